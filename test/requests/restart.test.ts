/**
 * "Kill the controller with SIGKILL while requests run: after restart each one is resumed or ends
 * `failed` with a message — never stays running." A real controller and a separate agent process;
 * the sim agent's slow boots and shutdowns keep requests in flight when the kill comes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Creds } from '../helpers/cloud.js';
import { KumoProc, freePort, waitFor } from '../api/support.js';

const BOOT_MS = 4000;
const SHUTDOWN_MS = 3000;
const VMS = 5;
const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

describe('controller killed with SIGKILL while requests run', { timeout: 90_000 }, () => {
  const data = mkdtempSync(join(tmpdir(), 'kumo-restart-'));
  let port: number;
  let controller: KumoProc;
  let agent: KumoProc;
  let creds: Creds;
  let hostId: string;

  // The agent keeps the URL it registered with, so the controller must come back on the same port.
  const startController = async (): Promise<string> => {
    controller = new KumoProc('controller', ['controller', '--data', data, '--port', String(port), '--name', 'c1', '--log', join(data, 'controller.log')]);
    return controller.waitForOutput(/REST: +(http:\/\/\S+)\/v1/);
  };

  async function api(method: string, path: string, who: 'admin' | 'tenant' = 'tenant', body?: unknown): Promise<any> {
    const res = await fetch(`${creds.restUrl}${path}`, {
      method, headers: { authorization: `Bearer ${creds[who].key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  const request = (id: string) => api('GET', `/requests/${id}`);

  /** SIGKILL once `ready` holds for the requests, restart, and return how each one ended. */
  async function killAndRestartDuring(ids: string[], ready: (reqs: any[]) => boolean): Promise<Map<string, any>> {
    await waitFor('requests in flight', async () => ready(await Promise.all(ids.map(request))), 15_000);
    const atKill = await Promise.all(ids.map(request));
    assert.ok(atKill.some((r) => r.status === 'running'), `nothing running at the kill: ${atKill.map((r) => r.status)}`);
    await controller.kill9();
    const url = await startController();
    assert.equal(url, `http://127.0.0.1:${port}`);
    // A bounded wait: resumed work takes one boot or shutdown; a request left running fails this.
    const ended = new Map<string, any>();
    await waitFor('every request to end', async () => {
      for (const id of ids) if (!ended.has(id)) { const r = await request(id); if (FINISHED.has(r.status)) ended.set(id, r); }
      return ended.size === ids.length;
    }, 30_000, 200).catch(async (e) => {
      const stuck = (await Promise.all(ids.map(request))).filter((r) => !FINISHED.has(r.status));
      throw new Error(`${(e as Error).message}; still unfinished: ${JSON.stringify(stuck)}`);
    });
    for (const r of ended.values()) {
      assert.notEqual(r.status, 'cancelled', `nobody cancelled ${r.requestId}`);
      if (r.status === 'failed') {
        assert.ok(r.message.length > 0, `${r.requestId} failed without a message`);
        assert.ok(r.error.message?.length > 0, `${r.requestId} failed without an error`);
      }
    }
    return ended;
  }

  /** What the sim agent really runs (its state file), to hold the controller's records against. */
  const agentRuns = (): string[] => (JSON.parse(readFileSync(join(data, 'agent', 'sim-h1.json'), 'utf8')) as { vmId: string }[]).map((v) => v.vmId).sort();

  before(async () => {
    port = await freePort();
    const url = await startController();
    creds = JSON.parse(readFileSync(join(data, 'credentials.json'), 'utf8'));
    agent = new KumoProc('agent', ['agent', '--controller', url, '--join-token-file', join(data, 'join-token'), '--listen', '127.0.0.1:0',
      '--data', join(data, 'agent'), '--host', 'h1', '--vcpus', '32', '--memory-mib', '65536',
      '--driver', 'sim', '--sim-boot-ms', String(BOOT_MS), '--sim-shutdown-ms', String(SHUTDOWN_MS), '--log', join(data, 'agent.log')]);
    hostId = await waitFor('the agent to register', async () => ((await api('GET', '/hosts', 'admin')) as any[]).find((h) => h.status === 'up')?.hostId, 20_000);
  });

  after(async () => {
    await agent?.stop();
    await controller?.stop();
    rmSync(data, { recursive: true, force: true });
  });

  let vms: string[] = [];
  let offAfterOn = '';

  it('power-ons cut off mid-boot are resumed (or fail with a message), a queued power-off runs after them', async () => {
    vms = [];
    for (let i = 0; i < VMS; i++) vms.push((await api('POST', '/vms', 'tenant', { type: 'be.small', name: `restart-${i}` })).vmId);
    const ons = new Map<string, string>();
    for (const vm of vms) ons.set((await api('POST', `/vms/${vm}/power-on`)).requestId, vm);
    // Queued behind the first VM's power-on: a request the dead controller had not started.
    offAfterOn = (await api('POST', `/vms/${vms[0]}/power-off`, 'tenant', { force: true })).requestId;
    const ids = [...ons.keys(), offAfterOn];

    // Progress 30 means the agent was called: the kill lands inside a boot.
    const ended = await killAndRestartDuring(ids, (reqs) => reqs.some((r) => r.status === 'running' && r.progress >= 30));
    const off = ended.get(offAfterOn)!;
    assert.ok(off.finishedAt >= ended.get([...ons.keys()][0])!.finishedAt, 'the power-off ran after the power-on it was queued behind');

    for (const [id, vm] of ons) {
      const r = ended.get(id)!;
      const status = await api('GET', `/vms/${vm}/status`);
      assert.equal(status.requestId, '', `${vm} still names a request`);
      if (vm === vms[0]) continue;
      if (r.status === 'succeeded') assert.deepEqual({ status: status.status, power: status.power }, { status: 'running', power: 'on' }, vm);
      else assert.notEqual(status.status, 'starting', `${vm} left starting by a failed request`);
    }
    const first = await api('GET', `/vms/${vms[0]}/status`);
    if (off.status === 'succeeded') assert.equal(first.status, 'stopped');
    // The controller's books and the agent agree about what runs.
    const running = ((await api('GET', '/vms')) as any[]).filter((v) => v.status === 'running').map((v) => v.vmId).sort();
    assert.deepEqual(agentRuns(), running);
    const host = await api('GET', `/hosts/${hostId}`, 'admin');
    assert.deepEqual(host.vmList.map((v: any) => v.vmId).sort(), running);
    assert.ok([...ended.values()].filter((r) => r.status === 'succeeded').length >= 1, 'at least one request was resumed to success');
  });

  it('power-offs cut off mid-shutdown are resumed (or fail with a message)', async () => {
    const runningVms = ((await api('GET', '/vms')) as any[]).filter((v) => v.status === 'running').map((v) => v.vmId);
    assert.ok(runningVms.length >= 2, `too few running VMs left: ${runningVms}`);
    const offs = new Map<string, string>();
    for (const vm of runningVms) offs.set((await api('POST', `/vms/${vm}/power-off`, 'tenant', { force: false })).requestId, vm);
    const ended = await killAndRestartDuring([...offs.keys()], (reqs) => reqs.some((r) => r.status === 'running' && r.progress >= 20));
    for (const [id, vm] of offs) {
      const status = await api('GET', `/vms/${vm}/status`);
      if (ended.get(id)!.status === 'succeeded') assert.deepEqual({ status: status.status, power: status.power }, { status: 'stopped', power: 'off' }, vm);
      else assert.notEqual(status.status, 'stopping', `${vm} left stopping by a failed request`);
    }
    const running = ((await api('GET', '/vms')) as any[]).filter((v) => v.status === 'running').map((v) => v.vmId).sort();
    assert.deepEqual(agentRuns(), running);
  });

  it('no request of this store is left queued or running', async () => {
    const open = ((await api('GET', '/requests?limit=1000', 'admin')) as any[]).filter((r) => !FINISHED.has(r.status));
    assert.deepEqual(open, []);
  });
});
