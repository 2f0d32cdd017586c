/**
 * The REST face (/v1) of the same operations: auth schemes, problem+json faults, the OpenAPI
 * document against the operations table, async 202s, long-poll, the events websocket, metrics.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { OPERATIONS } from '../../src/api/operations/index.js';
import { Cloud, type Creds } from '../helpers/cloud.js';
import { basic, waitFor } from './support.js';

interface Reply { status: number; type: string; headers: Headers; body: any }

/** A boot long enough that a long-poll visibly waits, short enough to keep the file quick. */
const BOOT_MS = 1500;

describe('REST /v1', { timeout: 60_000 }, () => {
  let cloud: Cloud;
  let c: Creds;
  const bearer = () => ({ authorization: `Bearer ${c.tenant.key}` });
  const basicAuth = () => ({ authorization: basic(c.tenant.user, c.tenant.key) });
  const admin = () => ({ authorization: `Bearer ${c.admin.key}` });

  async function call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Reply> {
    const res = await fetch(`${c.restUrl}${path}`, {
      method, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', headers: res.headers, body: text ? JSON.parse(text) : null };
  }

  function assertProblem(r: Reply, status: number, code: number, title: string): void {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.match(r.type, /^application\/problem\+json/);
    assert.equal(r.body.code, code);
    assert.equal(r.body.title, title);
    assert.equal(r.body.status, status);
    assert.equal(typeof r.body.detail, 'string');
  }

  before(async () => {
    cloud = await Cloud.up(['--sim-boot-ms', String(BOOT_MS)]);
    c = cloud.creds;
  });
  after(async () => { await cloud?.destroy(); });

  for (const [scheme, auth] of [['Bearer', bearer], ['Basic', basicAuth]] as const) {
    it(`creates, shows and deletes a VM with ${scheme} auth`, async () => {
      const created = await call('POST', '/vms', auth(), { type: 'be.small', name: `rest-${scheme.toLowerCase()}` });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const { vmId } = created.body;
      assert.match(vmId, /^vm-/);
      const shown = await call('GET', `/vms/${vmId}`, auth());
      assert.equal(shown.status, 200);
      assert.match(shown.type, /^application\/json/);
      assert.equal(shown.body.vmId, vmId);
      assert.equal(shown.body.name, `rest-${scheme.toLowerCase()}`);
      assert.equal(shown.body.status, 'stopped');
      assert.equal(shown.body.disks[0].slot, 0);
      assert.ok((await call('GET', '/vms', auth())).body.some((v: any) => v.vmId === vmId));
      const deleted = await call('DELETE', `/vms/${vmId}`, auth());
      assert.equal(deleted.status, 204);
      assert.equal(deleted.body, null);
      assertProblem(await call('GET', `/vms/${vmId}`, auth()), 404, 3, 'NOT_FOUND');
    });
  }

  describe('faults are application/problem+json', () => {
    it('NOT_FOUND → 404', async () => assertProblem(await call('GET', '/vms/vm-000000000000', bearer()), 404, 3, 'NOT_FOUND'));
    it('INVALID_PARAMS → 400 (unknown member)', async () => {
      const r = await call('POST', '/vms', bearer(), { type: 'be.small', colour: 'blue' });
      assertProblem(r, 400, 5, 'INVALID_PARAMS');
      assert.match(r.body.detail, /colour/);
    });
    it('INVALID_PARAMS → 400 (wrong type, negative size)', async () => {
      assertProblem(await call('POST', '/vms', bearer(), { type: 7 }), 400, 5, 'INVALID_PARAMS');
      assertProblem(await call('POST', '/volumes', bearer(), { sizeGiB: -1 }), 400, 5, 'INVALID_PARAMS');
      assertProblem(await call('GET', '/requests/req-000000000000/wait?timeoutSeconds=-1', bearer()), 400, 5, 'INVALID_PARAMS');
    });
    it('AUTHORIZATION → 403 (tenant calls an admin operation)', async () => {
      assertProblem(await call('GET', '/hosts', bearer()), 403, 2, 'AUTHORIZATION');
      assertProblem(await call('POST', '/tenants', basicAuth(), { name: 'nope' }), 403, 2, 'AUTHORIZATION');
    });
    it("another tenant's VM → 404, not 403", async () => {
      const t = await call('POST', '/tenants', admin(), { name: 'rest-other' });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      const u = await call('POST', `/tenants/${t.body.tenantId}/users`, admin());
      const vm = (await call('POST', '/vms', bearer(), { type: 'be.small' })).body.vmId;
      const theirs = { authorization: `Bearer ${u.body.key}` };
      assertProblem(await call('GET', `/vms/${vm}`, theirs), 404, 3, 'NOT_FOUND');
      assertProblem(await call('DELETE', `/vms/${vm}`, theirs), 404, 3, 'NOT_FOUND');
      assert.equal((await call('DELETE', `/vms/${vm}`, bearer())).status, 204);
    });
    it('no or wrong credentials → 401', async () => {
      for (const h of <Record<string, string>[]>[{}, { authorization: 'Bearer wrong' }, { authorization: basic(c.tenant.user, 'wrong') }]) {
        const r = await call('GET', '/vms', h);
        assert.equal(r.status, 401);
        assert.match(r.type, /^application\/problem\+json/);
      }
    });
  });

  it('/v1/openapi.json is OpenAPI 3 with a path for every operation', async () => {
    const r = await call('GET', '/openapi.json', {});
    assert.equal(r.status, 200);
    const doc = r.body;
    assert.match(doc.openapi, /^3\./);
    const missing: string[] = [];
    for (const o of OPERATIONS) {
      const entry = doc.paths?.[o.rest.path]?.[o.rest.method.toLowerCase()];
      if (!entry) { missing.push(`${o.name}: ${o.rest.method} ${o.rest.path}`); continue; }
      assert.equal(entry.operationId, o.name, `${o.rest.method} ${o.rest.path}`);
      const status = String(o.rest.status ?? 200);
      assert.ok(entry.responses?.[status], `${o.name} documents no ${status} response`);
      for (const name of o.rest.path.matchAll(/\{(\w+)\}/g)) {
        assert.ok(entry.parameters?.some((p: any) => p.in === 'path' && p.name === name[1]), `${o.name}: path parameter ${name[1]} undocumented`);
      }
    }
    assert.deepEqual(missing, []);
    const ids = Object.values<any>(doc.paths).flatMap((p) => Object.values<any>(p).map((m) => m.operationId)).filter(Boolean);
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  });

  describe('async operations', () => {
    let vmId: string;
    before(async () => { vmId = (await call('POST', '/vms', bearer(), { type: 'be.small', name: 'rest-async' })).body.vmId; });

    it('return 202 with a requestId, and wait?timeoutSeconds=5 long-polls to the end', async () => {
      const t0 = Date.now();
      const on = await call('POST', `/vms/${vmId}/power-on`, bearer());
      assert.equal(on.status, 202, JSON.stringify(on.body));
      assert.match(on.body.requestId, /^req-/);
      assert.equal(on.headers.get('location'), `/v1/requests/${on.body.requestId}`);
      const answeredIn = Date.now() - t0;
      assert.ok(answeredIn < BOOT_MS, `202 after ${answeredIn} ms: the call waited for the boot`);

      const w0 = Date.now();
      const waited = await call('GET', `/requests/${on.body.requestId}/wait?timeoutSeconds=5`, bearer());
      const waitedMs = Date.now() - w0;
      assert.equal(waited.status, 200);
      assert.equal(waited.body.status, 'succeeded', JSON.stringify(waited.body));
      assert.equal(waited.body.requestId, on.body.requestId);
      assert.ok(waitedMs > BOOT_MS / 3, `answered after ${waitedMs} ms: no long-poll`);
      assert.ok(waitedMs < 5000, `answered after ${waitedMs} ms: the end of the request was not noticed`);
      assert.equal((await call('GET', `/vms/${vmId}/status`, bearer())).body.power, 'on');
    });

    it('wait returns at the timeout with the request still running', async () => {
      const off = await call('POST', `/vms/${vmId}/power-off`, bearer(), { force: false });
      assert.equal(off.status, 202, JSON.stringify(off.body));
      const w0 = Date.now();
      const early = await call('GET', `/requests/${off.body.requestId}/wait?timeoutSeconds=0`, bearer());
      assert.ok(['queued', 'running'].includes(early.body.status), early.body.status);
      assert.ok(Date.now() - w0 < 1000);
      const done = await call('GET', `/requests/${off.body.requestId}/wait?timeoutSeconds=10`, bearer());
      assert.equal(done.body.status, 'succeeded');
    });
  });

  it('/v1/events delivers request.succeeded to its tenant and nothing of it to another tenant', async () => {
    const t = await call('POST', '/tenants', admin(), { name: 'rest-events' });
    const u = await call('POST', `/tenants/${t.body.tenantId}/users`, admin());
    const wsUrl = `${c.restUrl.replace(/^http/, 'ws')}/events`;
    const open = async (key: string) => {
      const ws = new WebSocket(wsUrl, { headers: { authorization: `Bearer ${key}` } });
      const got: any[] = [];
      ws.on('message', (m) => got.push(JSON.parse(String(m))));
      await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
      return { ws, got };
    };
    const mine = await open(c.tenant.key);
    const theirs = await open(u.body.key);
    try {
      const vmId = (await call('POST', '/vms', bearer(), { type: 'be.small', name: 'rest-events' })).body.vmId;
      const { requestId } = (await call('POST', `/vms/${vmId}/power-on`, bearer())).body;
      const ok = await waitFor('request.succeeded on the owner\'s socket',
        async () => mine.got.find((e) => e.kind === 'request.succeeded' && e.data.requestId === requestId), 10_000);
      assert.equal(ok.resourceId, vmId);
      assert.ok(mine.got.some((e) => e.kind === 'request.queued' && e.data.requestId === requestId));

      // The other socket works — it hears its own tenant — so its silence about ours means something.
      const theirVm = (await call('POST', '/vms', { authorization: `Bearer ${u.body.key}` }, { type: 'be.small' })).body.vmId;
      await waitFor('the other tenant\'s own event', async () => theirs.got.find((e) => e.resourceId === theirVm), 10_000);
      const leaked = theirs.got.filter((e) => (e.tenantId !== null && e.tenantId !== t.body.tenantId) || e.resourceId === vmId || e.data?.requestId === requestId);
      assert.deepEqual(leaked, []);
      assert.ok(!mine.got.some((e) => e.resourceId === theirVm), 'and ours heard nothing of theirs');
    } finally {
      mine.ws.terminate();
      theirs.ws.terminate();
    }
  });

  it('/v1/events refuses a socket without a key', async () => {
    const ws = new WebSocket(`${c.restUrl.replace(/^http/, 'ws')}/events`);
    const code = await new Promise<number>((resolve) => { ws.on('close', (n) => resolve(n)); ws.on('error', () => resolve(-1)); });
    assert.equal(code, 4401);
  });

  it('/metrics has kumo_api_request_duration_seconds per method', async () => {
    await call('GET', '/vms', bearer());
    await call('GET', '/vms/vm-000000000000', bearer());
    const res = await fetch(c.restUrl.replace(/\/v1$/, '/metrics'));
    assert.equal(res.status, 200);
    const text = await res.text();
    const series = (method: string) => new RegExp(`^kumo_api_request_duration_seconds_count\\{[^}]*method="${method}"[^}]*\\} ([0-9]+)`, 'm').exec(text);
    for (const m of ['getVmList', 'allocateVm', 'powerOnVm', 'waitRequest', 'getVmInfo']) {
      const s = series(m);
      assert.ok(s && Number(s[1]) >= 1, `no kumo_api_request_duration_seconds_count for ${m}`);
    }
    assert.match(text, /^kumo_api_request_duration_seconds_bucket\{[^}]*le="[^"]+"[^}]*method="getVmList"/m);
    assert.match(text, /^# TYPE kumo_api_request_duration_seconds histogram/m);
  });
});
