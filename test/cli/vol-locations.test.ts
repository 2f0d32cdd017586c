/**
 * `kumo vol nodes|locations|add-location|remove-location` against `kumo up` plus a second
 * `kumo storage-node`: a volume written through `kumo vol export` moves from the first node to
 * the second with the data intact, and the controller then deletes the first node's copy.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { Cloud, KUMO, rest } from '../helpers/cloud.js';
import { kumo } from './run.js';

const run = promisify(execFile);

/** A kumo process that runs until stopped; resolves once `ready` matches its output. Stopped by the test, by its pid. */
async function daemon(t: TestContext, args: string[], stream: 'stdout' | 'stderr', ready: RegExp): Promise<{ match: RegExpExecArray; stop: () => Promise<number | null> }> {
  const p = spawn(process.execPath, [KUMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(p, 'exit').then(([code]) => code as number | null);
  const stop = async () => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM'); return exited; };
  t.after(stop);
  let out = '';
  p[stream === 'stdout' ? 'stderr' : 'stdout']!.resume();
  for await (const chunk of p[stream]!) {
    out += chunk;
    const m = ready.exec(out);
    if (m) return { match: m, stop };
  }
  throw new Error(`kumo ${args[0]} ended: ${out}`);
}

/** Regular files under a directory, recursively. */
async function files(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).length;
}

describe('kumo vol locations', () => {
  let cloud: Cloud;
  let scratch: string;
  const k = (...args: string[]) => kumo([...args, '--data', cloud.data]);
  before(async () => {
    cloud = await Cloud.up(['--no-tiny-image']);
    scratch = await mkdtemp(join(tmpdir(), 'kumo-loc-test-'));
  });
  after(async () => {
    await cloud?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('moves a volume to another storage node with its data, and the controller deletes the old node\'s copy', async (t) => {
    // Three blocks of data, written through an export (which is then closed: the lease goes back),
    // while `kumo up`'s storage node is the only one: the volume is placed there alone.
    const r = await rest(cloud, 'tenant', 'POST', '/volumes', { sizeGiB: 1 });
    const vol = (r.body as { volumeId: string }).volumeId;
    const writes = ['write -P 7 0 4096', 'write -P 8 4194300 100', 'write -P 9 1073741000 824'];
    const ex = await daemon(t, ['vol', 'export', vol, '--data', cloud.data], 'stdout', /^(\S+)\n/);
    await run('qemu-io', ['-f', 'raw', ...writes.flatMap((w) => ['-c', w]), ex.match[1]]);
    assert.equal(await ex.stop(), 0);
    const initial = await k('vol', 'locations', vol);
    assert.match(initial.stdout, /^node-[0-9a-f]+\s+zone-1\s+3\s+0\s+0$/m);
    assert.equal(initial.stdout.trim().split('\n').length, 2);

    // Then a second node joins.
    const second = await daemon(t, ['storage-node', '--controller', cloud.url, '--join-token-file', join(cloud.data, 'join-token'),
      '--data', join(scratch, 'sn2'), '--name', 'second'], 'stderr', /serving at (\S+), data/);
    const nodes = await k('vol', 'nodes', '--output', 'json');
    assert.equal(nodes.code, 0, nodes.stderr);
    const list = JSON.parse(nodes.stdout) as { nodeId: string; name: string; address: string; status: string }[];
    const two = list.find((n) => n.name === 'second')!;
    assert.equal(two.address, second.match[1]);
    const one = list.find((n) => n.name !== 'second')!;
    const table = await k('vol', 'nodes');
    assert.match(table.stdout, /^NODE\s+NAME\s+ZONE\s+ADDRESS\s+STATUS\s+FREE\s+SIZE\s+LAST SEEN$/m);
    assert.match(table.stdout, new RegExp(`^${two.nodeId}\\s+second\\s+zone-1\\s+${two.address.replace(/\./g, '\\.')}\\s+up\\s+\\d+\\.\\d GiB\\s+\\d+\\.\\d GiB\\s+\\S+$`, 'm'));

    const added = await k('vol', 'add-location', vol, two.nodeId);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^status\s+succeeded$/m);
    assert.match(added.stderr, /^req-[0-9a-f]+ succeeded 100%/m);
    const both = await k('vol', 'locations', vol);
    assert.match(both.stdout, /^NODE\s+ZONE\s+IN-SYNC\s+SYNCING\s+OUT-OF-SYNC$/m);
    assert.match(both.stdout, new RegExp(`^${one.nodeId}\\s+zone-1\\s+3\\s+0\\s+0$`, 'm'));
    assert.match(both.stdout, new RegExp(`^${two.nodeId}\\s+zone-1\\s+3\\s+0\\s+0$`, 'm'));

    const queued = await k('vol', 'remove-location', vol, one.nodeId, '--no-wait');
    assert.equal(queued.code, 0, queued.stderr);
    const requestId = queued.stdout.trim();
    assert.match(requestId, /^req-[0-9a-f]+$/);
    const waited = await k('request', 'wait', requestId);
    assert.match(waited.stdout, /^status\s+succeeded$/m, waited.stderr);
    const moved = await k('vol', 'locations', vol, '--output', 'json');
    assert.deepEqual(JSON.parse(moved.stdout).locations, [{ nodeId: two.nodeId, zone: 'zone-1', inSync: 3, syncing: 0, outOfSync: 0 }]);

    const last = await k('vol', 'remove-location', vol, two.nodeId);
    assert.equal(last.code, 1);
    assert.match(last.stderr, /^kumo: INVALID_STATE \(4\): node-[0-9a-f]+ is the only location of vol-[0-9a-f]+; add another location first$/m);

    // The data now comes from the second node alone.
    const ex2 = await daemon(t, ['vol', 'export', vol, '--data', cloud.data], 'stdout', /^(\S+)\n/);
    const { stdout } = await run('qemu-io', ['-f', 'raw', ...writes.map((w) => w.replace('write', 'read')).flatMap((w) => ['-c', w]), ex2.match[1]]);
    assert.doesNotMatch(stdout, /fail/i, stdout);
    assert.equal(await ex2.stop(), 0);

    // The controller's StorageReconciler (every 3 s in `kumo up`) then deletes the objects the removed
    // location left on the first node (`kumo up`'s storage node keeps them in DATA/storage).
    while (await files(join(cloud.data, 'storage', 'objects')) > 0) await sleep(200);
    assert.equal(await files(join(scratch, 'sn2', 'objects')), 3);
    assert.equal(await second.stop(), 0);
  });
});
