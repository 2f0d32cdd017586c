/**
 * The init API's requests as the controller runs them, on a sim host: the "guest" is this test,
 * speaking HTTP to the agent's metadata listener of its VM (what the guest agent does through the
 * link, test/agent/metadata-link.test.ts). A request succeeds only once the guest confirmed its
 * generation; a stopped VM stores it; a silent guest fails the request and keeps the change.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fault } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault, InProcessCloud } from '../services/fixtures.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl tester@kumo';

forEachDb('init API requests end on the guest\'s confirmation', (env) => {
  let t: Principal;
  let cloud: InProcessCloud;
  before(async () => {
    t = await newTenant(env.services, 'initers');
    cloud = new InProcessCloud(env.services, { guestConfirmTimeoutMs: 1500 });
    await cloud.start();
  });
  after(() => cloud.stop());
  const s = () => env.services;

  async function runningVm(userData?: string): Promise<{ vmId: string; get: (path: string, init?: RequestInit) => Promise<Response> }> {
    const vmId = await s().vms.allocate(t, { type: 'be.small', ...(userData === undefined ? {} : { userData }) });
    assert.equal((await cloud.finish(t, await s().vms.powerOn(t, vmId))).status, 'succeeded');
    const { port } = await cloud.agent!.metadata.listen(vmId, 'test');
    return { vmId, get: (path, init) => fetch(`http://127.0.0.1:${port}${path}`, init) };
  }
  const generations = (vmId: string) => env.db.k.selectFrom('vm_config_generations').select(['generation', 'status'])
    .where('vm_id', '=', vmId).orderBy('generation').execute();

  it('a stopped VM: the request succeeds with the change stored for the next boot', async () => {
    const vmId = await s().vms.allocate(t, { type: 'be.small' });
    const info = await cloud.finish(t, await s().init.sshKey(t, vmId, 'root', KEY));
    assert.equal(info.status, 'succeeded');
    assert.deepEqual(info.result, { generation: 1, applied: false, stored: true, message: 'the VM is stopped: generation 1 is stored and applied at its next boot' });
    assert.deepEqual(await generations(vmId), [{ generation: 1, status: 'stored' }]);
  });

  it('a running VM: the request runs until the guest confirms the generation its long-poll handed out', async () => {
    const { vmId, get } = await runningVm();
    const first = await (await get('/kumo/v1/config')).json() as { generation: number };
    assert.equal(first.generation, 0);
    const poll = get('/kumo/v1/config?after=0&wait=20');
    const req = await s().init.password(t, vmId, 'root', 'correct horse battery staple');
    const config = await (await poll).json() as { generation: number; vendor_data: { kumo: { users: { name: string; passwordHash: string }[] } } };
    assert.equal(config.generation, 1);
    assert.match(config.vendor_data.kumo.users[0].passwordHash, /^\$6\$/);
    await sleep(300);
    assert.equal((await s().requests.get(t, req)).status, 'running', 'the request ended before the guest confirmed');
    assert.equal((await get('/kumo/v1/applied', { method: 'POST', body: JSON.stringify({ generation: 1 }) })).status, 204);
    const info = await cloud.finish(t, req);
    assert.equal(info.status, 'succeeded');
    assert.deepEqual(info.result, { generation: 1, applied: true });
    assert.deepEqual(await generations(vmId), [{ generation: 1, status: 'applied' }]);
  });

  it('a guest that never confirms: the request fails saying so, and the change stays stored', async () => {
    const { vmId } = await runningVm();
    const info = await cloud.finish(t, await s().init.network(t, vmId, { hostname: 'quiet' }));
    assert.equal(info.status, 'failed');
    assert.equal(info.error.code, Fault.INVALID_STATE);
    assert.match(info.error.message ?? '', /did not confirm generation 1 within 2 s.*stays stored/);
    assert.deepEqual(await generations(vmId), [{ generation: 1, status: 'stored' }]);
  });

  it('a guest that has run past the confirmation window without polling kumo\'s endpoints (cloud-init): stored at once', async () => {
    const { vmId, get } = await runningVm();
    assert.equal((await get('/openstack/latest/meta_data.json')).status, 200);
    await sleep(1700);
    const started = Date.now();
    const info = await cloud.finish(t, await s().init.sshKey(t, vmId, 'root', KEY));
    assert.equal(info.status, 'succeeded');
    assert.ok(Date.now() - started < 1500, 'it waited for a confirmation that could not come');
    assert.match((info.result as { message: string }).message, /without asking for kumo's guest-agent configuration .*stored/);
    assert.deepEqual(await generations(vmId), [{ generation: 1, status: 'stored' }]);
  });

  it('user-data: handed to the guest byte for byte; over 64 KiB refused with the figure', async () => {
    const script = `#!/bin/sh\necho "héllo from user-data"\n${'#'.repeat(1000)}\n`;
    const { get } = await runningVm(script);
    const r = await get('/openstack/latest/user_data');
    assert.equal(r.status, 200);
    assert.equal(await r.text(), script);
    assert.equal(await (await get('/latest/user-data')).text(), script);
    await fault(s().vms.allocate(t, { type: 'be.small', userData: 'x'.repeat(64 * 1024 + 1) }), Fault.INVALID_PARAMS, /65537 bytes; at most 65536/);
    const exact = await s().vms.allocate(t, { type: 'be.small', userData: 'x'.repeat(64 * 1024) });
    assert.ok(exact);
  });
});
