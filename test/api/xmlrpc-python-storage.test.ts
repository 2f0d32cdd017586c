/**
 * The HaaS storage methods driven by Python's xmlrpc.client (test/clients/haas_storage.py) against
 * `kumo up` plus a second `kumo storage-node`: a volume holding data moves between nodes through
 * addVolumeLocation / removeVolumeLocation, getVolumeInfo shows per-node block states, and bad
 * relocations are faults.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Fault } from '../../src/core/errors.js';
import { Cloud, KUMO, rest } from '../helpers/cloud.js';
import { KumoProc, pythonEnv, runPython, waitFor } from './support.js';

const run = promisify(execFile);

describe('HaaS storage methods driven by Python xmlrpc.client', { timeout: 120_000 }, () => {
  let cloud: Cloud;
  let node: KumoProc;
  let scratch: string;
  let r: any;

  before(async () => {
    cloud = await Cloud.up(['--no-tiny-image']);
    scratch = mkdtempSync(join(tmpdir(), 'kumo-py-storage-'));
    const made = await rest(cloud, 'tenant', 'POST', '/volumes', { sizeGiB: 1, name: 'moving' });
    const vol = (made.body as { volumeId: string }).volumeId;
    // Two blocks of data through an export (closed again, so nobody holds the volume).
    const ex = spawn(process.execPath, [KUMO, 'vol', 'export', vol, '--data', cloud.data], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(ex, 'exit');
    let uri = '';
    for await (const chunk of ex.stdout!) { uri += chunk; if (uri.includes('\n')) break; }
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 3 0 64k', '-c', 'write -P 4 5M 64k', uri.trim()]);
    ex.kill('SIGTERM');
    await exited;
    node = new KumoProc('storage-node', ['storage-node', '--controller', cloud.url, '--join-token-file', join(cloud.data, 'join-token'),
      '--data', join(scratch, 'sn2'), '--name', 'py-second', '--log', join(scratch, 'sn2.log')]);
    const second = await waitFor('the second storage node', async () => {
      const l = await rest(cloud, 'admin', 'GET', '/storage-nodes');
      return (l.body as { nodeId: string; name: string; status: string }[]).find((n) => n.name === 'py-second' && n.status === 'up');
    }, 20_000);
    const py = await runPython('haas_storage.py', { ...pythonEnv(cloud.creds), KUMO_VOLUME: vol, KUMO_NEW_NODE: second.nodeId }, 90_000);
    assert.equal(py.code, 0, `python exited ${py.code}\n${py.stderr}`);
    r = py.report;
    r.newNode = second.nodeId;
  });
  after(async () => {
    await node?.stop();
    await cloud?.destroy();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('getStorageNodeList is for admins and lists both nodes with address and space', () => {
    assert.equal(r.tenantNodes.code, Fault.AUTHORIZATION);
    assert.equal(r.nodes.length, 2);
    for (const n of r.nodes) {
      assert.match(n.address, /^127\.0\.0\.1:\d+$/);
      assert.equal(n.status, 'up');
      assert.ok(n.totalBytes > 0 && n.freeBytes > 0);
    }
  });

  it('getVolumeInfo shows the volume\'s location with its allocated blocks in-sync', () => {
    assert.deepEqual(r.before.locations.map((l: any) => [l.nodeId, l.inSync, l.syncing, l.outOfSync]), [[r.old, 2, 0, 0]]);
    assert.equal(r.before.replicas, 1);
  });

  it('addVolumeLocation copies the blocks; removeVolumeLocation then drops the old copy', () => {
    assert.equal(r.added.status, 'succeeded', JSON.stringify(r.added));
    assert.equal(r.added.method, 'addVolumeLocation');
    assert.deepEqual(r.withBoth.locations.map((l: any) => [l.nodeId, l.inSync]).sort(), [[r.old, 2], [r.newNode, 2]].sort());
    assert.equal(r.removed.status, 'succeeded', JSON.stringify(r.removed));
    assert.deepEqual(r.after.locations.map((l: any) => [l.nodeId, l.inSync, l.outOfSync]), [[r.newNode, 2, 0]]);
  });

  it('refuses the removal of the only copy, an unknown node, and a node that is already a location', () => {
    assert.equal(r.removeOnly.code, Fault.INVALID_STATE, JSON.stringify(r.removeOnly));
    assert.equal(r.removeLast.code, Fault.INVALID_STATE, JSON.stringify(r.removeLast));
    assert.equal(r.addUnknown.code, Fault.NOT_FOUND, JSON.stringify(r.addUnknown));
    assert.equal(r.addExisting.code, Fault.INVALID_STATE, JSON.stringify(r.addExisting));
  });
});
