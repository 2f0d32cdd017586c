import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { get, request, serve, vmA, vmB, type Served } from './fixtures.js';

let s: Served;
let a: number;
const A = vmA().vmId;
before(async () => {
  s = await serve([vmA(), vmB()]);
  a = s.port[A];
});
after(() => s.close());

/** The controller's side of an init-API change: store a new generation, then notify. */
function bump(vmId: string, change: object): void {
  const md = s.vms.get(vmId)!;
  s.vms.set(vmId, { ...md, generation: md.generation + 1, vendorData: { ...md.vendorData, ...change } });
  s.responder.notify(vmId);
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(5);
  assert.ok(cond());
}

test('a guest behind the current generation gets the config at once', async () => {
  const started = Date.now();
  const r = await get(a, `/kumo/v1/config?after=0&wait=60`);
  assert.ok(Date.now() - started < 1000);
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const cfg = JSON.parse(r.body.toString());
  assert.equal(cfg.generation, s.vms.get(A)!.generation);
  assert.equal(cfg.meta_data.uuid, A);
  assert.equal(cfg.network_data.networks[0].ip_address, '10.1.0.5');
  assert.deepEqual(cfg.vendor_data, s.vms.get(A)!.vendorData);
});

test('an up-to-date guest waits, and is answered when notify() brings a newer generation', async () => {
  const gen = s.vms.get(A)!.generation;
  const started = Date.now();
  const pending = get(a, `/kumo/v1/config?after=${gen}&wait=30`);
  await until(() => s.responder.pendingPolls === 1);
  bump(A, { authorizedKeys: ['ssh-ed25519 AAAA new'] });
  const r = await pending;
  assert.equal(r.status, 200);
  assert.ok(Date.now() - started < 5000);
  const cfg = JSON.parse(r.body.toString());
  assert.equal(cfg.generation, gen + 1);
  assert.deepEqual(cfg.vendor_data.authorizedKeys, ['ssh-ed25519 AAAA new']);
  assert.equal(s.responder.pendingPolls, 0);
});

test("another VM's notify, or one without a newer generation, does not answer; the wait ends in 304", async () => {
  const gen = s.vms.get(A)!.generation;
  const started = Date.now();
  const pending = get(a, `/kumo/v1/config?after=${gen}&wait=1`);
  await until(() => s.responder.pendingPolls === 1);
  bump(vmB().vmId, { x: 1 });
  s.responder.notify(A);
  const r = await pending;
  assert.equal(r.status, 304);
  assert.equal(r.body.length, 0);
  assert.ok(Date.now() - started >= 950, 'waited the full second');
  assert.equal(s.responder.pendingPolls, 0);
});

test('wait=0 (or none) answers 304 at once when nothing is newer', async () => {
  const gen = s.vms.get(A)!.generation;
  assert.equal((await get(a, `/kumo/v1/config?after=${gen}`)).status, 304);
  assert.equal((await get(a, `/kumo/v1/config?after=${gen}&wait=0`)).status, 304);
});

test('malformed or too-long waits are 400', async () => {
  for (const q of ['after=-1', 'after=x', 'wait=61', 'wait=1.5', 'after=1e3', 'wait=']) {
    assert.equal((await get(a, `/kumo/v1/config?${q}`)).status, 400, q);
  }
});

test('a client that hangs up stops its wait', async () => {
  const gen = s.vms.get(A)!.generation;
  const http = await import('node:http');
  const req = http.request({ host: '127.0.0.1', port: a, path: `/kumo/v1/config?after=${gen}&wait=60`, agent: false });
  req.on('error', () => {});
  req.end();
  await until(() => s.responder.pendingPolls === 1);
  req.destroy();
  await until(() => s.responder.pendingPolls === 0);
});

test('close() answers pending polls with 304 right away', async () => {
  const other = await serve([vmA()]);
  const p = other.port[A];
  const pending = get(p, `/kumo/v1/config?after=${vmA().generation}&wait=60`);
  await until(() => other.responder.pendingPolls === 1);
  other.responder.close();
  assert.equal((await pending).status, 304);
  await other.close();
});

test('POST /kumo/v1/applied reports the generation to onApplied, for the connection\'s VM only', async () => {
  const gen = s.vms.get(A)!.generation;
  const r = await request(a, 'POST', '/kumo/v1/applied', { 'content-type': 'application/json', 'x-kumo-vm': vmB().vmId }, JSON.stringify({ generation: gen }));
  assert.equal(r.status, 204);
  assert.deepEqual(s.applied.at(-1), [A, gen]);
});

test('applied: bad bodies are 400, a future generation 409, a big body 413', async () => {
  const n = s.applied.length;
  for (const body of ['', 'nope', '{}', '{"generation":-1}', '{"generation":1.5}', '{"generation":"3"}', 'null', '[]']) {
    assert.equal((await request(a, 'POST', '/kumo/v1/applied', {}, body)).status, 400, body);
  }
  const future = JSON.stringify({ generation: s.vms.get(A)!.generation + 1 });
  assert.equal((await request(a, 'POST', '/kumo/v1/applied', {}, future)).status, 409);
  const big = JSON.stringify({ generation: 1, pad: 'x'.repeat(8192) });
  assert.equal((await request(a, 'POST', '/kumo/v1/applied', {}, big)).status, 413);
  assert.equal(s.applied.length, n, 'none of these reached onApplied');
});
