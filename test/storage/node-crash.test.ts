/**
 * A storage node process killed with SIGKILL while a client has requests in flight: every one of
 * them fails with NodeClosed at once (not at its timeout), and the owner's reconnect to a restarted
 * node finds the acknowledged data. The node runs as a child process started from an inline ES
 * module that imports the compiled server (no extra entry file).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { newObjectId } from '../../src/storage/blockmap/index.js';
import { NodeClosed, StorageNodeClient } from '../../src/storage/node/index.js';

const TOKEN = 'crash-test-token';
const MODULE = pathToFileURL(resolve(dirname(fileURLToPath(import.meta.url)), '../../src/storage/node/index.js')).href;

const CHILD = `
const { StorageNodeServer } = await import(process.env.KUMO_NODE_MODULE);
const srv = new StorageNodeServer({ dir: process.env.KUMO_NODE_DIR, token: process.env.KUMO_NODE_TOKEN, host: '127.0.0.1', port: 0, copyTimeoutMs: 60000 });
const { port } = await srv.start();
process.stdout.write(JSON.stringify({ port }) + '\\n');
`;

async function startChild(t: TestContext, dir: string): Promise<{ child: ChildProcess; port: number; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    env: { ...process.env, KUMO_NODE_MODULE: MODULE, KUMO_NODE_DIR: dir, KUMO_NODE_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  let out = '';
  for await (const chunk of child.stdout!) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  return { child, port: (JSON.parse(out) as { port: number }).port, exited };
}

describe('storage node killed with -9', () => {
  it('fails the requests in flight with NodeClosed promptly; a restarted node serves the acknowledged data', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kumo-snode-crash-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    // A node that accepts and never answers: a COPY from it holds its object's queue on the child.
    const sockets: Socket[] = [];
    const silent = createServer((s) => { sockets.push(s); s.on('error', () => {}); });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    t.after(() => { for (const s of sockets) s.destroy(); silent.close(); });

    const first = await startChild(t, dir);
    const c = await StorageNodeClient.connect({ host: '127.0.0.1', port: first.port, token: TOKEN, timeoutMs: 30_000 });
    const kept = newObjectId();
    await c.write(kept, 4096, Buffer.from('acknowledged before the crash'), { fua: true });

    const stuck = newObjectId();
    const inFlight: Promise<unknown>[] = [
      c.copyObject(stuck, { host: '127.0.0.1', port: (silent.address() as { port: number }).port }),
      ...Array.from({ length: 50 }, (_, i) => c.write(stuck, i * 4096, Buffer.alloc(4096, i))),
      ...Array.from({ length: 50 }, (_, i) => c.read(stuck, i * 4096, 4096)),
      c.flush(),
      ...Array.from({ length: 32 }, () => c.write(newObjectId(), 0, Buffer.alloc(1024 * 1024, 1))),
    ];
    const settled = inFlight.map((p) => p.then(() => 'ok' as const, (e: unknown) => e));
    // Let the node take them in.
    while (sockets.length === 0) await new Promise((r) => setTimeout(r, 5));
    assert.ok(c.inflight >= 100, `${c.inflight} requests in flight`);

    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    const outcomes = await Promise.all(settled);
    const took = Date.now() - killedAt;
    assert.ok(took < 1000, `all requests settled ${took} ms after the kill (timeout is 30 s)`);
    const failed = outcomes.filter((o) => o !== 'ok');
    assert.ok(failed.length >= 102, `the COPY, the 100 requests queued behind it and the FLUSH failed (${failed.length})`);
    for (const e of failed) assert.ok(e instanceof NodeClosed, `NodeClosed, got ${String(e)}`);
    assert.equal((await c.closed).reason, 'remote');
    await assert.rejects(c.ping(), NodeClosed);
    await first.exited;

    // The owner reconnects: refused while the node is down, then served by the restarted node.
    await assert.rejects(StorageNodeClient.connect({ host: '127.0.0.1', port: first.port, token: TOKEN }),
      (e: unknown) => e instanceof NodeClosed && e.code === 'ECONNREFUSED');
    const second = await startChild(t, dir);
    const c2 = await StorageNodeClient.connect({ host: '127.0.0.1', port: second.port, token: TOKEN });
    t.after(() => c2.close());
    assert.equal((await c2.read(kept, 4096, 29)).toString(), 'acknowledged before the crash');
  });
});
