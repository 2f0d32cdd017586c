/**
 * Test fixtures of the frontend tests: real storage nodes on 127.0.0.1 in temporary directories
 * (in-process, or as child processes that can be killed with SIGKILL), and a volume session on
 * them over a MemoryMap. Everything a fixture starts is stopped by the test's `after` hooks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StorageNodeClient, StorageNodeServer } from '../../../src/storage/node/index.js';
import type { NodeAddress } from '../../../src/storage/frontend/map.js';
import { NodePool, type NodePoolOptions } from '../../../src/storage/frontend/pool.js';
import { VolumeSession, type VolumeSessionOptions } from '../../../src/storage/frontend/session.js';
import { MemoryMap } from './memory-map.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export interface TestNode { nodeId: string; dir: string; server: StorageNodeServer; addr: NodeAddress }

const stacks = new WeakMap<TestContext, (() => unknown)[]>();

/** Runs `fn` after the test, in reverse order of registration (t.after runs hooks in order). */
export function defer(t: TestContext, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (!stack) {
    const s: (() => unknown)[] = (stack = []);
    stacks.set(t, s);
    t.after(async () => {
      for (const f of s.reverse()) {
        try { await f(); } catch (e) { console.error(`cleanup failed: ${(e as Error).message}`); }
      }
    });
  }
  stack.push(fn);
}

export async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  defer(t, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** In-process storage nodes node-0, node-1, … (each its own directory and token). */
export async function startNodes(t: TestContext, count: number): Promise<TestNode[]> {
  const nodes: TestNode[] = [];
  for (let i = 0; i < count; i++) {
    const nodeId = `node-${i}`;
    const dir = await tempDir(t, `kumo-fe-${nodeId}-`);
    const token = `token-${i}`;
    const server = new StorageNodeServer({ dir, token, host: '127.0.0.1', port: 0, nodeId });
    const { port } = await server.start();
    defer(t, () => server.stop());
    nodes.push({ nodeId, dir, server, addr: { nodeId, zone: 'z1', host: '127.0.0.1', port, token } });
  }
  return nodes;
}

export interface Volume { map: MemoryMap; pool: NodePool; session: VolumeSession }

/**
 * A session on a fresh volume whose locations are `locations` (all of `addrs` may be added later).
 * `inProcess`: nodes its pool reaches in process (as a hyperconverged agent reaches its own node).
 */
export async function openVolume(t: TestContext, o: {
  addrs: NodeAddress[]; locations: string[]; sizeBytes: number; blockSize: number; leaseMs?: number;
  pool?: NodePoolOptions; session?: Partial<VolumeSessionOptions>; inProcess?: TestNode[];
}): Promise<Volume> {
  const map = new MemoryMap({ sizeBytes: o.sizeBytes, blockSize: o.blockSize, nodes: o.addrs, locations: o.locations, leaseMs: o.leaseMs });
  const pool = new NodePool({ client: 'frontend-test', ...o.pool });
  defer(t, () => pool.close());
  for (const n of o.inProcess ?? []) pool.addLocal(n.nodeId, n.server);
  const session = await VolumeSession.open({ map, volumeId: map.volumeId, pool, ...o.session });
  defer(t, () => session.close().catch(() => {}));
  return { map, pool, session };
}

/** The whole object as stored on a node (zeros past its end), read with a client of its own. */
export async function readObject(addr: NodeAddress, objectId: string, length: number): Promise<Buffer> {
  const c = await StorageNodeClient.connect({ host: addr.host, port: addr.port, token: addr.token });
  try {
    return await c.read(objectId, 0, length);
  } finally {
    await c.close();
  }
}

export { prng } from '../../helpers/qemu-tools.js';

/** A buffer whose bytes tell where they came from (write number and position), so misplaced data shows. */
export function pattern(length: number, tag: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = (tag * 131 + i * 7 + (i >> 8)) & 0xff;
  return b;
}

// --- storage nodes as child processes --------------------------------------------------------

const MODULE = pathToFileURL(resolve(dirname(fileURLToPath(import.meta.url)), '../../../src/storage/node/index.js')).href;

const CHILD = `
const { StorageNodeServer } = await import(process.env.KUMO_NODE_MODULE);
const srv = new StorageNodeServer({ dir: process.env.KUMO_NODE_DIR, token: process.env.KUMO_NODE_TOKEN, host: '127.0.0.1', port: Number(process.env.KUMO_NODE_PORT), nodeId: process.env.KUMO_NODE_ID });
const { port } = await srv.start();
process.stdout.write(JSON.stringify({ port }) + '\\n');
`;

export interface ChildNode { nodeId: string; child: ChildProcess; addr: NodeAddress; exited: Promise<unknown> }

/** A storage node in a child process (port 0 picks one; give the old port to restart it "in place"). */
export async function startChildNode(t: TestContext, o: { nodeId: string; dir: string; token: string; port?: number }): Promise<ChildNode> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: { ...process.env, KUMO_NODE_MODULE: MODULE, KUMO_NODE_DIR: o.dir, KUMO_NODE_TOKEN: o.token, KUMO_NODE_PORT: String(o.port ?? 0), KUMO_NODE_ID: o.nodeId },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  defer(t, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let out = '';
  for await (const chunk of child.stdout!) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  if (!out.includes('\n')) throw new Error(`storage node ${o.nodeId} did not start`);
  const { port } = JSON.parse(out) as { port: number };
  return { nodeId: o.nodeId, child, exited, addr: { nodeId: o.nodeId, zone: 'z1', host: '127.0.0.1', port, token: o.token } };
}
