/**
 * StorageNodeDaemon (`kumo storage-node`): registration, heartbeats, re-registration, and what a
 * restart keeps (name, id, port, token). A small fastify app stands in for the controller's
 * storage routes (wire.ts) and records what the daemon sends; the block service is real.
 */
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it, type TestContext } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { Cloud, KUMO, rest } from '../helpers/cloud.js';
import { newObjectId } from '../../src/storage/blockmap/index.js';
import { StorageNodeClient } from '../../src/storage/node/index.js';
import { RegistrationRefused, StorageNodeDaemon, defaultNodeName, type StorageNodeDaemonOptions } from '../../src/storage/node/daemon.js';
import { STORAGE_PATHS, type StorageHeartbeatBody, type StorageRegisterBody } from '../../src/storage/wire.js';

const JOIN = 'join-token-for-tests';

/** The controller's storage door as wire.ts describes it, with knobs to misbehave. */
class StubController {
  app: FastifyInstance = Fastify({ logger: false });
  url = '';
  registers: StorageRegisterBody[] = [];
  heartbeats: { token: string; body: StorageHeartbeatBody }[] = [];
  /** name → [nodeId, token]: registering again under a name keeps both. */
  readonly nodes = new Map<string, [string, string]>();
  /** Registrations answered 503 before one succeeds. */
  failRegisters = 0;
  /** While set, registrations wait for it. */
  hold: Promise<void> | null = null;
  private waiters: { kind: 'register' | 'heartbeat'; resolve: () => void }[] = [];

  async start(t: TestContext): Promise<this> {
    const bearer = (h: string | undefined) => /^Bearer (.+)$/.exec(h ?? '')?.[1] ?? '';
    this.app.post(STORAGE_PATHS.register, async (req, reply) => {
      if (bearer(req.headers.authorization) !== JOIN) return reply.code(401).type('application/problem+json').send({ title: 'AUTHORIZATION', code: 2, detail: 'bad join token' });
      const body = req.body as StorageRegisterBody;
      this.registers.push(body);
      this.wake('register');
      if (this.hold) await this.hold;
      if (this.failRegisters > 0) { this.failRegisters--; return reply.code(503).send({ error: 'not yet' }); }
      let n = this.nodes.get(body.name);
      if (!n) this.nodes.set(body.name, n = [`node-${this.nodes.size + 1}`, `token-${body.name}-${Math.random()}`]);
      return { nodeId: n[0], nodeToken: n[1] };
    });
    this.app.post(STORAGE_PATHS.heartbeat, async (req, reply) => {
      const token = bearer(req.headers.authorization);
      this.heartbeats.push({ token, body: req.body as StorageHeartbeatBody });
      this.wake('heartbeat');
      if (![...this.nodes.values()].some(([, t]) => t === token)) return reply.code(401).send({ error: 'unknown node token; register again' });
      return {};
    });
    await this.app.listen({ host: '127.0.0.1', port: 0 });
    const a = this.app.server.address();
    this.url = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    t.after(() => this.app.close());
    return this;
  }

  /** Resolves at the next call of that kind. */
  next(kind: 'register' | 'heartbeat'): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ kind, resolve }));
  }

  private wake(kind: 'register' | 'heartbeat'): void {
    const ready = this.waiters.filter((w) => w.kind === kind);
    this.waiters = this.waiters.filter((w) => w.kind !== kind);
    for (const w of ready) w.resolve();
  }
}

async function dataDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-snd-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function daemon(t: TestContext, o: Partial<StorageNodeDaemonOptions> & { dataDir: string; controllerUrl: string }): StorageNodeDaemon {
  const d = new StorageNodeDaemon({ zone: 'zone-1', joinToken: JOIN, heartbeatMs: 20, ...o });
  t.after(() => d.stop());
  return d;
}

/** Proves the block service takes `token`: a write and its read-back. */
async function serves(port: number, token: string): Promise<void> {
  const c = await StorageNodeClient.connect({ host: '127.0.0.1', port, token, timeoutMs: 5000 });
  try {
    const id = newObjectId();
    await c.write(id, 0, Buffer.from('kumo'));
    assert.equal((await c.read(id, 0, 4)).toString(), 'kumo');
  } finally {
    await c.close();
  }
}

describe('StorageNodeDaemon', () => {
  it('registers with the join token, serves with the node token, heartbeats its address and space', async (t) => {
    const ctl = await new StubController().start(t);
    const dir = await dataDir(t);
    const d = daemon(t, { dataDir: dir, controllerUrl: ctl.url, name: 'sn-a', zone: 'zone-7' });
    const beat = ctl.next('heartbeat');
    await d.start();
    assert.equal(d.nodeId, 'node-1');
    const [reg] = ctl.registers;
    assert.equal(reg.name, 'sn-a');
    assert.equal(reg.zone, 'zone-7');
    assert.equal(reg.host, '127.0.0.1');
    assert.equal(reg.port, d.port);
    assert.ok(reg.totalBytes > 0 && reg.freeBytes > 0 && reg.freeBytes <= reg.totalBytes);
    const token = ctl.nodes.get('sn-a')![1];
    await serves(d.port, token);
    await assert.rejects(serves(d.port, 'wrong'), /bad node token/);

    await beat;
    const hb = ctl.heartbeats[0];
    assert.equal(hb.token, token);
    assert.deepEqual({ nodeId: hb.body.nodeId, host: hb.body.host, port: hb.body.port }, { nodeId: 'node-1', host: '127.0.0.1', port: d.port });
    assert.ok(hb.body.freeBytes > 0);

    const saved = JSON.parse(await readFile(join(dir, 'node.json'), 'utf8'));
    assert.deepEqual(saved, { name: 'sn-a', port: d.port, nodeId: 'node-1', token });
  });

  it('retries while the controller fails, and registers again when it forgets the token', async (t) => {
    const ctl = await new StubController().start(t);
    ctl.failRegisters = 2;
    const d = daemon(t, { dataDir: await dataDir(t), controllerUrl: ctl.url });
    await d.start();
    assert.equal(ctl.registers.length, 3);
    const first = ctl.nodes.get(d.identity.name)![1];

    // A controller restored from an old backup: it knows the name but hands out a new token.
    const again = ctl.next('register');
    ctl.nodes.set(d.identity.name, ['node-1', 'token-rotated']);
    // Only the rotated token is known now, so the next heartbeat (old token) gets 401.
    await again;
    // The register reply may still be in flight: wait for a heartbeat carrying the new token.
    while (!ctl.heartbeats.some((h) => h.token === 'token-rotated')) await ctl.next('heartbeat');
    await serves(d.port, 'token-rotated');
    assert.notEqual(first, 'token-rotated');
  });

  it('a restart keeps name, id and port, and serves with the saved token before the controller answers', async (t) => {
    const ctl = await new StubController().start(t);
    const dir = await dataDir(t);
    const d1 = daemon(t, { dataDir: dir, controllerUrl: ctl.url });
    await d1.start();
    const { nodeId, port } = { nodeId: d1.nodeId, port: d1.port };
    assert.equal(d1.identity.name, defaultNodeName(dir));
    const token = ctl.nodes.get(d1.identity.name)![1];
    await d1.stop();

    let release!: () => void;
    ctl.hold = new Promise((r) => { release = r; });
    const d2 = daemon(t, { dataDir: dir, controllerUrl: ctl.url });
    const arrived = ctl.next('register');
    const started = d2.start();
    await arrived;
    assert.equal(ctl.registers.at(-1)!.port, port);
    assert.equal(ctl.registers.at(-1)!.name, defaultNodeName(dir));
    await serves(port, token);
    release();
    await started;
    assert.equal(d2.nodeId, nodeId);
    assert.equal(d2.port, port);
  });

  it('moves to a new port when the saved one is taken, and tells the controller', async (t) => {
    const ctl = await new StubController().start(t);
    const dir = await dataDir(t);
    const d1 = daemon(t, { dataDir: dir, controllerUrl: ctl.url });
    await d1.start();
    const port = d1.port;
    await d1.stop();
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => squatter.close(() => r())));
    const d2 = daemon(t, { dataDir: dir, controllerUrl: ctl.url });
    await d2.start();
    assert.notEqual(d2.port, port);
    assert.equal(ctl.registers.at(-1)!.port, d2.port);
    assert.equal(JSON.parse(await readFile(join(dir, 'node.json'), 'utf8')).port, d2.port);
  });

  it('an explicit port that is taken fails the start', async (t) => {
    const ctl = await new StubController().start(t);
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => squatter.close(() => r())));
    const port = (squatter.address() as { port: number }).port;
    const d = daemon(t, { dataDir: await dataDir(t), controllerUrl: ctl.url, listen: { host: '127.0.0.1', port } });
    await assert.rejects(d.start(), /EADDRINUSE/);
  });

  it('a wrong join token is refused at once, and the block service stops', async (t) => {
    const ctl = await new StubController().start(t);
    const d = daemon(t, { dataDir: await dataDir(t), controllerUrl: ctl.url, joinToken: 'wrong' });
    await assert.rejects(d.start(), (e: Error) => e instanceof RegistrationRefused && /HTTP 401\): bad join token/.test(e.message));
    await assert.rejects(serves(d.port, 'anything'), /ECONNREFUSED|closed|connect/i);
  });

  it('stop() ends the registration attempts while the controller cannot be reached', async (t) => {
    const ctl = await new StubController().start(t);
    ctl.failRegisters = Infinity;
    const d = daemon(t, { dataDir: await dataDir(t), controllerUrl: ctl.url });
    const arrived = ctl.next('register');
    const started = d.start();
    await arrived;
    await d.stop();
    await started;
    assert.equal(d.nodeId, undefined);
  });
});

/** `kumo storage-node` as an operator runs it, against a real controller (`kumo up`). */
describe('kumo storage-node with a controller', () => {
  let cloud: Cloud;
  before(async () => { cloud = await Cloud.up(['--no-tiny-image']); });
  after(() => cloud?.destroy());

  /** Starts the command and resolves once it says it serves (after registering); stopped by the test, by its pid. */
  async function storageNode(t: TestContext, args: string[]): Promise<{ nodeId: string; address: string; stop: () => Promise<number | null> }> {
    const p = spawn(process.execPath, [KUMO, 'storage-node', '--controller', cloud.url, '--join-token-file', join(cloud.data, 'join-token'), ...args],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = once(p, 'exit').then(([code]) => code as number | null);
    const stop = async () => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM'); return exited; };
    t.after(stop);
    let err = '';
    for await (const chunk of p.stderr!) {
      err += chunk;
      const m = /^kumo storage-node: \S+ \((node-[0-9a-f]+)\) in \S+ serving at (\S+),/m.exec(err);
      if (m) return { nodeId: m[1], address: m[2], stop };
    }
    throw new Error(`kumo storage-node ended: ${err}`);
  }

  it('registers, is listed with its address and space, and comes back as itself after a restart', async (t) => {
    const dir = await dataDir(t);
    const first = await storageNode(t, ['--data', dir, '--zone', 'zone-1', '--name', 'extra-node']);
    const listed = await rest(cloud, 'admin', 'GET', '/storage-nodes');
    assert.equal(listed.status, 200);
    const row = (listed.body as { nodeId: string; name: string; zone: string; status: string; address: string; freeBytes: number; totalBytes: number }[])
      .find((n) => n.nodeId === first.nodeId);
    assert.ok(row, JSON.stringify(listed.body));
    assert.deepEqual({ name: row.name, zone: row.zone, status: row.status, address: row.address }, { name: 'extra-node', zone: 'zone-1', status: 'up', address: first.address });
    assert.ok(row.totalBytes > 0 && row.freeBytes > 0);
    assert.equal(await first.stop(), 0);

    const again = await storageNode(t, ['--data', dir, '--zone', 'zone-1']);
    assert.deepEqual(again, { ...again, nodeId: first.nodeId, address: first.address });
    assert.equal(await again.stop(), 0);
  });

  it('a wrong join token ends the command with one line and exit 1', async (t) => {
    const dir = await dataDir(t);
    const p = spawn(process.execPath, [KUMO, 'storage-node', '--controller', cloud.url, '--join-token', 'wrong', '--data', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    t.after(() => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
    let err = '';
    p.stderr!.on('data', (d) => { err += d; });
    const [code] = await once(p, 'exit');
    assert.equal(code, 1);
    assert.match(err, /^kumo: the controller refused the registration \(HTTP 401\): wrong join token$/m);
  });
});
