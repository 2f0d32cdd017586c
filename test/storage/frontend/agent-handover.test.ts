/**
 * Live migration's switch-over between two agents' frontends (AgentFrontend: NBD on a unix socket,
 * block map over HTTP to the controller's real storage routes, a real storage node): prepare at
 * the destination, hand over at the source, activate at the destination — as QEMU sees it through
 * its NBD connections — and the rollbacks.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { AgentFrontend } from '../../../src/agent/frontend.js';
import { storageRoutes } from '../../../src/api/storage-routes.js';
import { Fault, KumoError } from '../../../src/core/errors.js';
import type { Principal } from '../../../src/services/principal.js';
import { HttpMapSource } from '../../../src/storage/frontend/http-map.js';
import { LeaseLost } from '../../../src/storage/frontend/map.js';
import { NbdClient } from '../../../src/storage/nbd/index.js';
import { StorageNodeServer } from '../../../src/storage/node/index.js';
import { forEachDb, newTenant, silent } from '../../helpers/db.js';
import { GiB, registerNode } from '../../services/storage-fixtures.js';
import { pattern } from './nodes.js';

interface Agent { hostId: string; token: string; dir: string; fe: AgentFrontend }

const isEio = (e: unknown) => (e as { code?: string }).code === 'EIO';
const pending = async (p: Promise<unknown>) => (await Promise.race([p.then(() => 'settled', () => 'settled'), new Promise((r) => setTimeout(r, 50, 'pending'))])) === 'pending';

forEachDb('live migration: agent frontends hand a VM\'s volumes over', (env) => {
  let tenant: Principal;
  let door: FastifyInstance;
  let url = '';
  let node: StorageNodeServer;
  const dirs: string[] = [];
  const agents: Agent[] = [];
  const clients: NbdClient[] = [];

  async function agent(name: string): Promise<Agent> {
    const r = await env.services.hosts.register(await env.services.hosts.joinToken(), {
      zone: 'zone-a', url: 'http://127.0.0.1:1', driver: 'sim', accel: 'tcg', hosts: [{ name, vcpus: 1, memoryMiB: 1024, architectures: ['x86_64'] }],
    });
    const dir = await mkdtemp(join(tmpdir(), `kumo-fe-${name}-`));
    dirs.push(dir);
    const fe = new AgentFrontend({ dir, controllerUrl: url, token: () => r.nodeToken, log: silent });
    await fe.start(async () => new Set());
    const a = { hostId: r.hosts[0].hostId, token: r.nodeToken, dir, fe };
    agents.push(a);
    return a;
  }

  async function connect(a: Agent, volumeId: string): Promise<NbdClient> {
    const c = await NbdClient.connect({ path: a.fe.socket }, { exportName: volumeId });
    clients.push(c);
    return c;
  }

  const attachments = async (a: Agent) => JSON.parse(await readFile(join(a.dir, 'attachments.json'), 'utf8')) as Record<string, { state: string }>;
  const holder = async (volumeId: string) => (await env.services.blockMaps.leaseOf(volumeId))?.holder ?? null;
  const volume = () => env.services.volumes.allocate(tenant, { sizeGiB: 1 });

  before(async () => {
    tenant = await newTenant(env.services, 'migrate');
    door = Fastify({ logger: false });
    await door.register(async (x) => storageRoutes(x, env.services));
    await door.listen({ host: '127.0.0.1', port: 0 });
    const addr = door.server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    const dir = await mkdtemp(join(tmpdir(), 'kumo-fe-node-'));
    dirs.push(dir);
    node = new StorageNodeServer({ dir, token: 'not-registered-yet', host: '127.0.0.1', port: 0 });
    const { port } = await node.start();
    node.setToken((await registerNode(env.services, 'sn-migrate', 'zone-a', { port })).nodeToken);
  });

  after(async () => {
    for (const a of agents) await a.fe.close();
    for (const c of clients) await c.disconnect().catch(() => {});
    await node?.stop();
    await door?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('prepare, hand over, activate: the destination serves every acknowledged byte, the source only EIO; then a rollback', async () => {
    const [src, dst, third] = [await agent('src-1'), await agent('dst-1'), await agent('other-1')];
    const vols = [await volume(), await volume()];
    await src.fe.attach(src.hostId, 'vm-1', vols);
    const qa = await Promise.all(vols.map((v) => connect(src, v)));
    const data = vols.map((_, i) => pattern(3 * 1024 * 1024, i + 1));
    for (const [i, c] of qa.entries()) {
      await c.write(1024 * 1024 - 512, data[i]);
      await c.flush();
    }

    const disks = vols.map((volumeId) => ({ volumeId, sizeBytes: GiB }));
    await dst.fe.prepare(dst.hostId, 'vm-1', disks);
    await dst.fe.prepare(dst.hostId, 'vm-1', disks);
    assert.equal((await attachments(dst))['vm-1'].state, 'prepared');
    const qb = await Promise.all(vols.map((v) => connect(dst, v)));
    assert.equal(qb[0].size, GiB);
    const heldRead = qb[0].read(1024 * 1024, 4096);
    const heldWrite = qb[1].write(8 * 1024 * 1024, Buffer.alloc(4096, 0xee), { fua: true });
    assert.ok(await pending(heldRead), 'the destination holds I/O until activate');
    await assert.rejects(dst.fe.activate('vm-1'), /held by/, 'activate before the hand-over cannot take the leases');

    // Only the holder's agent may hand its lease over.
    const { epoch } = (await env.services.blockMaps.leaseOf(vols[0]))!;
    await assert.rejects(new HttpMapSource({ controllerUrl: url, holder: src.hostId, auth: { bearer: third.token } }).handover(vols[0], epoch, third.hostId),
      (e) => e instanceof KumoError && e.code === Fault.AUTHORIZATION);
    await assert.rejects(new HttpMapSource({ controllerUrl: url, holder: third.hostId, auth: { bearer: third.token } }).handover(vols[0], epoch, dst.hostId), LeaseLost);

    await src.fe.handOver('vm-1', dst.hostId);
    await src.fe.handOver('vm-1', dst.hostId);
    assert.deepEqual(await Promise.all(vols.map(holder)), [dst.hostId, dst.hostId]);
    assert.equal((await attachments(src))['vm-1'], undefined);
    await assert.rejects(qa[0].write(0, Buffer.alloc(512, 1)), isEio);
    await assert.rejects(qa[1].read(0, 512), isEio);

    await dst.fe.activate('vm-1');
    await dst.fe.activate('vm-1');
    assert.equal((await attachments(dst))['vm-1'].state, 'attached');
    assert.deepEqual(await heldRead, data[0].subarray(512, 512 + 4096));
    await heldWrite;
    for (const [i, c] of qb.entries()) assert.deepEqual(await c.read(1024 * 1024 - 512, data[i].length), data[i]);
    await qb[0].write(0, Buffer.alloc(4096, 0xdd), { fua: true });

    // Rolled back after the hand-over: the destination stops, the source opens again under the
    // NBD connections its QEMU kept.
    await dst.fe.detach('vm-1');
    assert.deepEqual(await Promise.all(vols.map(holder)), [null, null]);
    await src.fe.attach(src.hostId, 'vm-1', vols);
    assert.deepEqual(await qa[0].read(0, 4096), Buffer.alloc(4096, 0xdd));
    assert.deepEqual(await qa[1].read(8 * 1024 * 1024, 4096), Buffer.alloc(4096, 0xee));
    await qa[0].write(4096, Buffer.alloc(512, 2), { fua: true });
    assert.equal((await attachments(src))['vm-1'].state, 'attached');
    await src.fe.detach('vm-1');
  });

  it('a prepared VM detached: its held I/O fails with EIO; leases handed to it go back, others stay', async () => {
    const [src, dst] = [await agent('src-2'), await agent('dst-2')];
    const vol = await volume();
    await src.fe.attach(src.hostId, 'vm-2', [vol]);
    await assert.rejects(src.fe.prepare(src.hostId, 'vm-2', [{ volumeId: vol, sizeBytes: GiB }]), /already attached/);
    await dst.fe.prepare(dst.hostId, 'vm-2', [{ volumeId: vol, sizeBytes: GiB }]);
    await assert.rejects(dst.fe.prepare(dst.hostId, 'vm-x', [{ volumeId: vol, sizeBytes: GiB }]), /in use by vm-2/);
    await assert.rejects(dst.fe.handOver('vm-2', src.hostId), /prepared/);
    const qb = await connect(dst, vol);
    const held = qb.read(0, 512);
    assert.ok(await pending(held));
    await dst.fe.detach('vm-2');
    await assert.rejects(held, isEio);
    assert.equal(await holder(vol), src.hostId);
    assert.deepEqual(await attachments(dst), {});
    const qa = await connect(src, vol);
    await qa.write(0, Buffer.alloc(512, 3), { fua: true });

    // Rolled back after the hand-over but before activate (or the hand-over failed half way).
    await dst.fe.prepare(dst.hostId, 'vm-2', [{ volumeId: vol, sizeBytes: GiB }]);
    await src.fe.handOver('vm-2', dst.hostId);
    await dst.fe.detach('vm-2');
    assert.equal(await holder(vol), null);
    await src.fe.attach(src.hostId, 'vm-2', [vol]);
    assert.deepEqual(await qa.read(0, 512), Buffer.alloc(512, 3));
    await src.fe.detach('vm-2');
  });

  it('a restarted destination drops an incoming migration and gives back the leases already handed to it', async () => {
    const [src, dst] = [await agent('src-3'), await agent('dst-3')];
    const vol = await volume();
    await src.fe.attach(src.hostId, 'vm-3', [vol]);
    await dst.fe.prepare(dst.hostId, 'vm-3', [{ volumeId: vol, sizeBytes: GiB }]);
    await src.fe.handOver('vm-3', dst.hostId);
    await dst.fe.close();
    const again = new AgentFrontend({ dir: dst.dir, controllerUrl: url, token: () => dst.token, log: silent });
    agents.push({ ...dst, fe: again });
    await again.start(async () => new Set(['vm-3']));
    assert.equal(await holder(vol), null);
    assert.deepEqual(await attachments(dst), {});
    await assert.rejects(again.activate('vm-3'), /not prepared/);
    await src.fe.attach(src.hostId, 'vm-3', [vol]);
    assert.equal(await holder(vol), src.hostId);
    await src.fe.detach('vm-3');
  });
});
