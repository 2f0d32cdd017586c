/**
 * A small real kumo storage stack for the benches, every part its own process started from dist/:
 * `kumo controller` (SQLite store in DATA), `kumo storage-node`s on loopback (data in DATA/<name>),
 * and `kumo vol export` frontends. Every process is tracked (bench/lib/proc.ts) and stopped by its
 * pid: stopCloud() stops the exports first (they flush and give their lease back to the controller),
 * then the storage nodes, then the controller.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stop, track, waitForLine } from './proc.js';

/** dist/bench/lib/cloud.js → dist/src/cli/main.js */
export const KUMO = join(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

interface Creds { restUrl: string; admin: { user: string; key: string }; tenant: { user: string; key: string } }

export interface StorageNode { name: string; nodeId: string; address: string; proc: ChildProcess }

export interface Cloud {
  data: string;
  /** Controller base URL (without /v1). */
  url: string;
  controller: ChildProcess;
  nodes: StorageNode[];
  creds: Creds;
}

export interface Export { proc: ChildProcess; uri: string; stderr: () => string }

/** Keeps the last `max` characters a stream wrote, and keeps the pipe drained. */
function tail(s: NodeJS.ReadableStream | null, max = 4000): () => string {
  let buf = '';
  s?.on('data', (d: Buffer) => { buf = (buf + d.toString('utf8')).slice(-max); });
  return () => buf;
}

function kumo(args: string[], nodeArgs: string[] = []): ChildProcess {
  return track(spawn(process.execPath, [...nodeArgs, KUMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

export async function rest(c: Cloud, who: 'admin' | 'tenant', method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${c.creds.restUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${c.creds[who].key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/**
 * Starts the controller, then the storage nodes `names` (all in `zone-1`, on 127.0.0.1, port 0), and
 * waits until every node is listed up by GET /v1/storage-nodes. `nodeArgs` go to node itself (e.g. --cpu-prof).
 */
export async function startCloud(data: string, names: string[], o: { nodeArgs?: string[] } = {}): Promise<Cloud> {
  mkdirSync(join(data, 'logs'), { recursive: true });
  const controller = kumo(['controller', '--data', data, '--port', '0', '--listen', '127.0.0.1', '--log', join(data, 'logs', 'controller.log')]);
  const err = tail(controller.stderr);
  const m = await waitForLine(controller, /REST: +(http:\/\/\S+)\/v1/, 60_000, 'kumo controller').catch((e: Error) => {
    throw new Error(`${e.message}\n${err()}`);
  });
  controller.stdout!.resume();
  const url = m[1];
  const creds = JSON.parse(readFileSync(join(data, 'credentials.json'), 'utf8')) as Creds;
  const cloud: Cloud = { data, url, controller, nodes: [], creds };
  const procs = names.map((name) => {
    const p = kumo(['storage-node', '--data', join(data, name), '--controller', url, '--zone', 'zone-1', '--join-token-file', join(data, 'join-token'),
      '--listen', '127.0.0.1:0', '--name', name, '--log', join(data, 'logs', `${name}.log`)], o.nodeArgs);
    tail(p.stdout);
    return { name, proc: p, stderr: tail(p.stderr) };
  });
  const until = Date.now() + 30_000;
  for (;;) {
    for (const p of procs) {
      if (p.proc.exitCode !== null || p.proc.signalCode !== null) throw new Error(`storage node ${p.name} exited (${p.proc.exitCode ?? p.proc.signalCode}): ${p.stderr()}`);
    }
    const r = await rest(cloud, 'admin', 'GET', '/storage-nodes');
    if (r.status !== 200) throw new Error(`GET /storage-nodes: ${r.status} ${JSON.stringify(r.body)}`);
    const listed = r.body as { nodeId: string; name: string; status: string; address: string }[];
    const up = procs.map((p) => ({ p, n: listed.find((x) => x.name === p.name && x.status === 'up') }));
    if (up.every((x) => x.n)) {
      cloud.nodes = up.map(({ p, n }) => ({ name: p.name, nodeId: n!.nodeId, address: n!.address, proc: p.proc }));
      return cloud;
    }
    if (Date.now() > until) throw new Error(`storage nodes not up after 30 s: ${JSON.stringify(listed)}`);
    await sleep(200);
  }
}

/** POST /v1/volumes as the tenant, then where the controller placed it (its locations' nodes). */
export async function allocateVolume(c: Cloud, a: { sizeGiB: number; replicas: number; name: string }): Promise<{ volumeId: string; nodes: StorageNode[] }> {
  const r = await rest(c, 'tenant', 'POST', '/volumes', a);
  if (r.status !== 201) throw new Error(`POST /volumes ${JSON.stringify(a)}: ${r.status} ${JSON.stringify(r.body)}`);
  const volumeId = (r.body as { volumeId: string }).volumeId;
  const info = await rest(c, 'admin', 'GET', `/volumes/${volumeId}`);
  if (info.status !== 200) throw new Error(`GET /volumes/${volumeId}: ${info.status} ${JSON.stringify(info.body)}`);
  const locs = (info.body as { locations: { nodeId: string }[] }).locations;
  const nodes = locs.map((l) => {
    const n = c.nodes.find((x) => x.nodeId === l.nodeId);
    if (!n) throw new Error(`${volumeId} placed on ${l.nodeId}, not one of the bench's storage nodes`);
    return n;
  });
  if (nodes.length !== a.replicas) throw new Error(`${volumeId} has ${nodes.length} locations, asked for ${a.replicas}`);
  return { volumeId, nodes };
}

/** `kumo vol export VOL --socket PATH`: resolves with the NBD URI it prints first. */
export async function startExport(c: Cloud, volumeId: string, socket: string, nodeArgs: string[] = []): Promise<Export> {
  const proc = kumo(['vol', 'export', volumeId, '--socket', socket, '--data', c.data], nodeArgs);
  const stderr = tail(proc.stderr);
  const m = await waitForLine(proc, /^(nbd\S+)\n/, 30_000, `kumo vol export ${volumeId}`).catch((e: Error) => {
    throw new Error(`${e.message}\n${stderr()}`);
  });
  proc.stdout!.resume();
  return { proc, uri: m[1], stderr };
}

/** Exports first (flush + lease release need the controller and the nodes), then nodes, then the controller. */
export async function stopCloud(c: Cloud, exports: Export[]): Promise<void> {
  await Promise.all(exports.map((e) => stop(e.proc, 30_000)));
  await Promise.all(c.nodes.map((n) => stop(n.proc)));
  await stop(c.controller);
}
