/**
 * `kumo vol export` with the tools operators use on it: qemu-io writes and reads patterns through
 * the printed NBD URI, qemu-img compares the volume with a reference file after a workload. The
 * whole stack is real: `kumo up` (controller, storage node), the CLI's own frontend.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { Cloud, KUMO, rest } from '../helpers/cloud.js';
import { HttpMapSource } from '../../src/storage/frontend/http-map.js';
import { kumo } from './run.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Export { uri: string; stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; stderr: string }> }

describe('kumo vol export', () => {
  let cloud: Cloud;
  let scratch: string;
  before(async () => {
    cloud = await Cloud.up(['--no-tiny-image']);
    scratch = await mkdtemp(join(tmpdir(), 'kumo-export-test-'));
  });
  after(async () => {
    await cloud?.destroy();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  async function volume(sizeGiB = 1): Promise<string> {
    const r = await rest(cloud, 'tenant', 'POST', '/volumes', { sizeGiB });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return (r.body as { volumeId: string }).volumeId;
  }

  /** Starts an export and resolves with the URI it prints first; the test stops it by its pid. */
  async function startExport(t: TestContext, args: string[]): Promise<Export> {
    const p = spawn(process.execPath, [KUMO, 'vol', 'export', ...args, '--data', cloud.data], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr!.on('data', (d) => { stderr += d; });
    const exited = once(p, 'exit').then(([code]) => ({ code: code as number | null, stderr }));
    const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (p.exitCode === null && p.signalCode === null) p.kill(signal);
      return exited;
    };
    t.after(() => stop('SIGKILL'));
    let out = '';
    for await (const chunk of p.stdout!) {
      out += chunk;
      if (out.includes('\n')) return { uri: out.slice(0, out.indexOf('\n')), stop };
    }
    throw new Error(`kumo vol export ended without a URI (exit ${(await exited).code}): ${stderr}`);
  }

  /** qemu-io on the URI; a failed pattern check is a failure even where qemu-io exits 0. */
  async function qemuIo(uri: string, cmds: string[]): Promise<string> {
    const { stdout } = await run('qemu-io', ['-f', 'raw', ...cmds.flatMap((c) => ['-c', c]), uri], { maxBuffer: 16 * MiB });
    assert.doesNotMatch(stdout, /failed|error/i, stdout);
    return stdout;
  }

  async function compare(reference: string, uri: string): Promise<void> {
    const r = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', reference, uri]).catch((e: { code: number; stdout: string; stderr: string }) => e);
    assert.equal(r.stdout.trim(), 'Images are identical.', `${r.stdout}${r.stderr}`);
  }

  it('serves qemu-io and qemu-img over a unix socket, then over TCP after a restart, with the data kept', async (t) => {
    const vol = await volume();
    const first = await startExport(t, [vol]);
    const m = /^nbd\+unix:\/\/\/(vol-[0-9a-f]+)\?socket=(\/.+)$/.exec(first.uri);
    assert.ok(m, first.uri);
    assert.equal(m[1], vol);
    const socket = m[2];

    // Non-overlapping writes (so each can be read back by its pattern): unaligned ones, ones across
    // the 4 MiB block boundaries, the first and last bytes, and zeroes written over part of one.
    const writes: [offset: number, length: number, pattern: number][] = [[0, 512, 0x11], [GiB - 4097, 4097, 0x12]];
    for (let i = 0; i < 24; i++) {
      const base = (i + 1) * 40 * MiB;
      writes.push([base + ((i * 7919) % 65_537), 1 + ((i * 104_729) % 300_000), 0x20 + i]);
      writes.push([base + 8 * MiB - 1000 - i, 5000 + i * 3, 0x60 + i]);
    }
    const zeroes: [number, number] = [writes[2][0] + 10, 100];
    const reference = join(scratch, `${vol}.raw`);
    const f = await open(reference, 'w');
    await f.truncate(GiB);
    for (const [off, len, p] of writes) await f.write(Buffer.alloc(len, p), 0, len, off);
    await f.write(Buffer.alloc(zeroes[1]), 0, zeroes[1], zeroes[0]);
    await f.close();

    await qemuIo(first.uri, [...writes.map(([o, l, p]) => `write -P ${p} ${o} ${l}`), `write -z ${zeroes[0]} ${zeroes[1]}`, 'flush']);
    const reads = writes.filter((_, i) => i !== 2).map(([o, l, p]) => `read -P ${p} ${o} ${l}`);
    await qemuIo(first.uri, [...reads, `read -P 0 ${zeroes[0]} ${zeroes[1]}`, `read -P 0 ${GiB / 2} 65536`]);
    await compare(reference, first.uri);
    const info = await run('qemu-img', ['info', '--output', 'json', first.uri]);
    assert.equal(JSON.parse(info.stdout)['virtual-size'], GiB);

    // The export holds the write lease: a second one is refused in one line.
    const second = await kumo(['vol', 'export', vol, '--data', cloud.data]);
    assert.equal(second.code, 1, second.stderr);
    assert.equal(second.stdout, '');
    assert.match(second.stderr, new RegExp(`^kumo: ${vol} is in use by export:[0-9a-f]+ \\(a running VM or another export holds its write lease\\); stop that first\\n$`));

    const ended = await first.stop('SIGTERM');
    assert.equal(ended.code, 0, ended.stderr);
    assert.equal(existsSync(dirname(socket)), false, 'the private socket directory is removed');

    // The lease was given back: an export over TCP takes it and finds the data.
    const again = await startExport(t, [vol, '--tcp', '127.0.0.1:0']);
    assert.match(again.uri, new RegExp(`^nbd://127\\.0\\.0\\.1:\\d+/${vol}$`));
    await compare(reference, again.uri);
    assert.equal((await again.stop('SIGINT')).code, 0);

    const locations = await kumo(['vol', 'locations', vol, '--data', cloud.data]);
    assert.equal(locations.code, 0, locations.stderr);
    const lines = locations.stdout.trim().split('\n');
    assert.match(lines[0], /^NODE\s+ZONE\s+IN-SYNC\s+SYNCING\s+OUT-OF-SYNC$/);
    // 1 + 1 + 24 blocks with a single write, 24 with a write across a boundary (two blocks each).
    assert.match(lines[1], /^node-[0-9a-f]+\s+zone-1\s+74\s+0\s+0$/);
  });

  it('a volume another frontend holds (as an agent holds a running VM\'s) is refused with its holder named', async (t) => {
    const vol = await volume();
    const holder = new HttpMapSource({ controllerUrl: cloud.url, holder: 'export:held-by-test', auth: { bearer: cloud.creds.admin.key } });
    const map = await holder.open(vol);
    t.after(() => holder.release(vol, map.epoch));
    const r = await kumo(['vol', 'export', vol, '--socket', join(scratch, 'never.sock'), '--data', cloud.data]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `kumo: ${vol} is in use by export:held-by-test (a running VM or another export holds its write lease); stop that first\n`);
    assert.equal(existsSync(join(scratch, 'never.sock')), false);
  });

  it('usage and lookup errors', async () => {
    const both = await kumo(['vol', 'export', 'vol-1', '--tcp', '127.0.0.1:0', '--socket', '/tmp/x.sock', '--data', cloud.data]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /choose --tcp or --socket/);
    const missing = await kumo(['vol', 'export', 'vol-0000dead', '--data', cloud.data]);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /^kumo: .*vol-0000dead.*\n$/);
    const tenant = await kumo(['vol', 'export', await volume(), '--data', cloud.data, '--as', 'tenant']);
    assert.equal(tenant.code, 1, tenant.stderr);
    assert.match(tenant.stderr, /^kumo: volume exports are for administrators\n$/);
  });
});
