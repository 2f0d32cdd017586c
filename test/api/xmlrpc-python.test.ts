/**
 * The contract of shared/haas-api.md as Python's stock xmlrpc.client meets it: the script
 * (test/clients/haas_scenario.py) records what it saw, and these assertions judge it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cloud } from '../helpers/cloud.js';
import { pythonEnv, runPython, type PyResult } from './support.js';

const FINISHED = ['succeeded', 'failed', 'cancelled'];

describe('HaaS XML-RPC driven by Python xmlrpc.client', { timeout: 60_000 }, () => {
  let cloud: Cloud;
  let py: PyResult;
  let r: any;

  before(async () => {
    // A boot long enough that the status read right after powerOnVm still finds the request.
    cloud = await Cloud.up(['--sim-boot-ms', '1000']);
    py = await runPython('haas_scenario.py', pythonEnv(cloud.creds), 30_000);
    r = py.report;
  });
  after(async () => { await cloud?.destroy(); });

  it('runs to the end and reports', () => {
    assert.equal(py.code, 0, `python exited ${py.code}\n${py.stderr}`);
    assert.ok(r && typeof r === 'object', `no JSON report on stdout: ${py.stdout}`);
  });

  it('allocateVm reserves a stopped VM with its system volume in slot 0', () => {
    assert.ok(r.types.includes('be.small'), `catalog: ${r.types}`);
    assert.match(r.vmId, /^vm-/);
    assert.deepEqual(r.allocated, { status: 'stopped', power: 'off', disks: 1, systemDiskSlot: 0 });
  });

  it('powerOnVm returns a request id at once and the request ends succeeded', () => {
    const on = r.powerOn;
    assert.match(on.requestId, /^req-/);
    // Async: the call returned before the boot, so the VM names the request it is busy with.
    assert.equal(on.statusRightAfter.vmId, r.vmId);
    assert.equal(on.statusRightAfter.requestId, on.requestId);
    assert.equal(on.polledStatuses.at(-1), 'succeeded', `statuses seen: ${on.polledStatuses}`);
    for (const s of on.polledStatuses) assert.ok(['queued', 'running', 'succeeded'].includes(s), s);
    assert.equal(on.polled.requestId, on.requestId);
    assert.equal(on.polled.method, 'powerOnVm');
    assert.equal(on.polled.resourceId, r.vmId);
    assert.equal(on.polled.progress, 100);
    assert.deepEqual(on.polled.error, {});
    assert.ok(on.polled.finishedAt >= on.polled.startedAt && on.polled.startedAt >= on.polled.createdAt);
    assert.equal(on.waited.status, 'succeeded');
    assert.equal(on.waited.finishedAt, on.polled.finishedAt);
  });

  it('getVmStatus shows power "on" and no request once the start is done', () => {
    assert.deepEqual(r.statusAfterOn, { vmId: r.vmId, power: 'on', status: 'running', requestId: '' });
  });

  it("another tenant gets NOT_FOUND (3) for the VM and its request, never a hint it exists", () => {
    const o = r.other;
    assert.match(o.tenantId, /^tenant-/);
    for (const k of ['getVmInfo', 'getVmStatus', 'powerOffVm', 'getRequestIdInfo']) {
      assert.equal(o[k].code, 3, `${k}: ${JSON.stringify(o[k])}`);
      assert.doesNotMatch(o[k].message, /forbidden|permission|tenant/i, `${k} leaks: ${o[k].message}`);
    }
    assert.equal(o.listHasVm, false);
    assert.equal(o.adminListHasVm, true, 'the admin sees every tenant');
  });

  it('a tenant user calling an admin method gets AUTHORIZATION (2)', () => {
    for (const [k, v] of Object.entries<any>(r.adminMethods)) assert.equal(v.code, 2, `${k}: ${JSON.stringify(v)}`);
  });

  it('powerOffVm ends succeeded, the VM is off, deallocateVm removes it', () => {
    assert.match(r.powerOff.requestId, /^req-/);
    assert.equal(r.powerOff.waited.status, 'succeeded', JSON.stringify(r.powerOff.waited));
    assert.ok(FINISHED.includes(r.powerOff.waited.status));
    assert.deepEqual(r.statusAfterOff, { vmId: r.vmId, power: 'off', status: 'stopped', requestId: '' });
    assert.equal(r.deallocate, true);
    assert.equal(r.afterDeallocate.code, 3);
  });

  it('passing the contract limit is QUOTA_EXCEEDED (6) and allocates nothing', () => {
    assert.match(r.quota.first, /^vm-/);
    assert.equal(r.quota.second.code, 6, JSON.stringify(r.quota.second));
    assert.match(r.quota.second.message, /vms/);
    assert.equal(r.quota.vmsAfter, 1);
  });

  it('a guaranteed VM bigger than every host is NO_CAPACITY (7) and stays stopped', () => {
    const c = r.capacity;
    assert.ok(c.hosts >= 1);
    assert.equal(c.putVmType, true);
    assert.equal(c.powerOn.code, 7, JSON.stringify(c.powerOn));
    assert.equal(c.statusAfter.status, 'stopped');
    assert.equal(c.statusAfter.power, 'off');
    assert.equal(c.statusAfter.requestId, '');
    assert.equal(c.deallocate, true);
  });
});
