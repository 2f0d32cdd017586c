/**
 * The compute issue's acceptance criteria, end to end, on real QEMU (TCG here): a `kumo controller`
 * and a separate `kumo agent --driver qemu` (so the agent can be killed alone), the tiny-linux image,
 * and everything driven through the public API (REST, XML-RPC for the fault, the events websocket).
 *
 * Boots are what cost (7–25 s each under TCG on a loaded machine), so one controller+agent pair
 * serves the whole file and the scenarios share three VMs, booting in parallel where they can:
 *   1. A, B, C: allocateVm + restoreImage(tiny-linux) + powerOnVm → `KUMO-BOOT vm=<id> boot=1` on each console.
 *   2. NO_CAPACITY: a VM type larger than the host → fault 7 on powerOnVm, nothing started.
 *   3. The agent is stopped (SIGTERM) and restarted, then killed (SIGKILL) and restarted, while A, B
 *      and C run: same QEMU pids, VMs still `running` over two heartbeats; powerOffVm on B (ACPI) and C (force).
 *   4. In parallel — A: resetVm → boot=2; powerOffVm (ACPI) → stopped cleanly; powerOnVm → boot=3;
 *      powerOffVm force. C: powerOnVm → boot=2; `kill -9` of its QEMU → `error` + `vm.error` event;
 *      powerOnVm → boot=3; powerOffVm force.
 * No timing is asserted; timeouts are only there so a hang fails instead of blocking.
 * Every process started here is stopped by pid in `after`, QEMUs included (found by their run dirs).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { basic, parseFault, postRpc, xmlCall, xv } from '../api/support.js';
import { isQemuFor } from '../../src/compute/qemu/process.js';
import { EventLog, QemuCloud, say, waitFor } from './support.js';

const cloud = new QemuCloud('kumo-e2e-compute-');
let events: EventLog | null = null;
const vm = { A: '', B: '', C: '' };
let booted = false;
let agentBack = false;

const requireBooted = () => { if (!booted) throw new Error('the VMs did not boot (see the first test)'); };

/** The QEMU of `vmId` is gone (its pid no longer a QEMU for that pidfile) and the VM is stopped, power off. */
async function assertStopped(vmId: string, oldPid: number): Promise<void> {
  const s = await cloud.status(vmId);
  assert.deepEqual([s.status, s.power, s.requestId], ['stopped', 'off', ''], `${vmId}: ${JSON.stringify(s)}`);
  assert.equal(cloud.qemuPid(vmId), null, `${vmId}: no QEMU runs for its run dir`);
  assert.ok(!isQemuFor(oldPid, `${cloud.vmDir(vmId)}/qemu.pid`), `QEMU ${oldPid} is gone`);
}

/** How the agent's driver says it stopped the VM's latest run ("acpi", "forced", "forced after timeout"). */
function lastStopHow(vmId: string): string | undefined {
  return cloud.agentLogLines().filter((l) => l.msg === 'VM stopped' && l.vmId === vmId).at(-1)?.how as string | undefined;
}

describe('compute end to end on QEMU', { timeout: 600_000 }, () => {
  before(async () => {
    say(`starting a controller and a QEMU agent in ${cloud.data}`);
    await cloud.start();
    events = await EventLog.open(cloud);
    say(`cloud up: ${cloud.url}, host ${cloud.host}, image ${cloud.imageId}`);
  });

  after(async () => {
    events?.close();
    const left = cloud.qemuPids();
    if (left.length) say(`killing leftover QEMUs by pid: ${left.map((q) => `${q.vmId}=${q.pid}`).join(', ')}`);
    await cloud.destroy(process.env.KUMO_TEST_KEEP === '1');
    // Nothing of ours may outlive the test.
    assert.deepEqual(cloud.qemuPids(), []);
  });

  it('allocateVm + restoreImage(tiny-linux) + powerOnVm: each guest prints its boot marker (boot=1) on the console read through the API', { timeout: 300_000 }, async () => {
    const images = await cloud.rest('tenant', 'GET', '/images');
    assert.ok((images.body as { imageId: string; name: string }[]).some((i) => i.imageId === cloud.imageId && i.name === 'tiny-linux'), 'tiny-linux is visible to the tenant');
    vm.A = await cloud.allocate('be.small', 'e2e-a');
    vm.B = await cloud.allocate('be.small', 'e2e-b');
    vm.C = await cloud.allocate('be.small', 'e2e-c');
    const ids = [vm.A, vm.B, vm.C];
    await Promise.all(ids.map((id) => cloud.run(id, 'restore-image', { imageId: cloud.imageId }, 120_000)));
    say(`restored ${ids.join(', ')}; powering on`);
    const on = await Promise.all(ids.map((id) => cloud.run(id, 'power-on')));
    for (const [i, id] of ids.entries()) {
      const s = await cloud.status(id);
      assert.deepEqual([s.status, s.power], ['running', 'on'], `${id} after ${on[i].requestId}`);
      assert.ok(cloud.qemuPid(id), `${id}: a QEMU runs for it (pidfile in ${cloud.vmDir(id)})`);
    }
    const boots = await Promise.all(ids.map((id) => cloud.waitBoot(id, 1)));
    assert.deepEqual(boots, [1, 1, 1]);
    booted = true;
    say(`all three booted: ${ids.map((id) => `${id} pid ${cloud.qemuPid(id)}`).join(', ')}`);
  });

  it('a VM type whose memory exceeds the host: powerOnVm is NO_CAPACITY (fault 7) and nothing is started', async () => {
    const host = await cloud.hostRow();
    const type = { type: 'e2e.huge', vcpus: 1, memoryMiB: host.memoryMiB * 2, systemDiskGiB: 10, resourceType: 'best-effort' };
    const put = await cloud.rest('admin', 'POST', '/vm-types', type);
    assert.equal(put.status, 204, JSON.stringify(put.body));
    const id = await cloud.allocate('e2e.huge', 'e2e-huge');

    const creds = cloud.creds;
    const rpc = await postRpc(creds.xmlrpcUrl, xmlCall('powerOnVm', xv.str(id)), { authorization: basic(creds.tenant.user, creds.tenant.key) });
    assert.equal(rpc.status, 200);
    assert.equal(rpc.fault?.code, 7, `XML-RPC powerOnVm: ${rpc.text}`);
    assert.match(rpc.fault!.message, /memory|capacity|no host/i);
    const viaRest = await cloud.rest('tenant', 'POST', `/vms/${id}/power-on`, {});
    assert.equal(viaRest.status, 503, JSON.stringify(viaRest.body));
    assert.equal((viaRest.body as { code: number }).code, 7);
    assert.equal(parseFault(rpc.text)?.code, 7);

    const s = await cloud.status(id);
    assert.deepEqual([s.status, s.power, s.requestId], ['stopped', 'off', '']);
    const reqs = await cloud.rest('tenant', 'GET', `/requests?resourceId=${id}`);
    assert.deepEqual(reqs.body, [], 'no request was queued');
    assert.equal(existsSync(cloud.vmDir(id)), false, 'no run directory on the agent');
    assert.equal(cloud.qemuPids().some((q) => q.vmId === id), false, 'no QEMU for it');
    assert.equal((await cloud.rest('tenant', 'DELETE', `/vms/${id}`)).status, 204);
  });

  it('the agent stopped (SIGTERM) or killed (SIGKILL) and restarted with the same --data/--host/--zone: the QEMUs run on, the VMs stay running, powerOffVm works', { timeout: 300_000 }, async () => {
    requireBooted();
    const ids = [vm.A, vm.B, vm.C];
    const pids = ids.map((id) => cloud.qemuPid(id));
    assert.ok(pids.every((p) => p !== null));
    const first = await cloud.hostRow();

    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      const agentPid = cloud.agent!.proc.pid;
      await cloud.stopAgent(sig);
      say(`agent ${agentPid} stopped by ${sig}`);
      assert.deepEqual(ids.map((id) => cloud.qemuPid(id)), pids, `the QEMUs outlive the agent (${sig})`);
      for (const id of ids) assert.equal((await cloud.status(id)).status, 'running', `${id} while the agent is away`);
      const logged = cloud.agentLogLines().length;
      await cloud.startAgent();
      const h = await cloud.hostRow();
      assert.equal(h.hostId, first.hostId, 'the same host row');
      assert.deepEqual(ids.map((id) => cloud.qemuPid(id)), pids, `same QEMU pids after the restart (${sig})`);
      const found = await waitFor('the new agent to find the QEMUs', async () => {
        const f = cloud.agentLogLines().slice(logged).filter((l) => l.msg === 'found running VM').map((l) => String(l.vmId)).sort();
        return f.length >= ids.length ? f : null;
      }, 20_000, 200);
      assert.deepEqual(found, [...ids].sort(), 'the new agent found every running QEMU');
    }

    // Two heartbeats of the new agent (lastSeen moves twice), and the reconciler's grace passed.
    let seen = (await cloud.hostRow()).lastSeen;
    for (let beats = 0; beats < 2;) {
      const now = await waitFor('a heartbeat', async () => { const l = (await cloud.hostRow()).lastSeen; return l !== seen ? l : null; }, 20_000, 250);
      seen = now;
      beats++;
    }
    for (const id of ids) assert.deepEqual(await cloud.status(id), { vmId: id, status: 'running', power: 'on', requestId: '' }, `${id} after two heartbeats`);
    assert.deepEqual(ids.map((id) => cloud.qemuPid(id)), pids);
    assert.equal(events!.events.some((e) => ids.includes(e.resourceId) && (e.kind === 'vm.error' || e.kind === 'vm.stopped')), false, 'no VM was reported gone');
    // The console still works through the restarted agent.
    assert.match(await cloud.console(vm.B), new RegExp(`KUMO-BOOT vm=${vm.B} boot=1`));
    agentBack = true;

    const [offB, offC] = await Promise.all([cloud.run(vm.B, 'power-off', { force: false }), cloud.run(vm.C, 'power-off', { force: true })]);
    assert.equal(offB.status, 'succeeded');
    assert.equal(offC.status, 'succeeded');
    await assertStopped(vm.B, pids[1]!);
    await assertStopped(vm.C, pids[2]!);
    assert.equal(lastStopHow(vm.B), 'acpi');
    assert.equal(lastStopHow(vm.C), 'forced');
    assert.equal(cloud.qemuPid(vm.A), pids[0], 'A runs on');
  });

  describe('after the agent restart', { concurrency: true }, () => {
    it('resetVm reboots (boot=2); powerOffVm by ACPI stops it cleanly; powerOnVm again (boot=3); powerOffVm force', { timeout: 400_000 }, async () => {
      requireBooted();
      if (!agentBack) throw new Error('the agent did not come back (see the agent test)');
      const id = vm.A;
      const pid1 = cloud.qemuPid(id)!;
      const reset = await cloud.run(id, 'reset');
      assert.equal(reset.status, 'succeeded');
      assert.equal(await cloud.waitBoot(id, 2), 2);
      assert.equal(cloud.qemuPid(id), pid1, 'a reset keeps the QEMU process');
      assert.ok(events!.find('vm.reset', id), 'vm.reset event');
      say(`${id}: reset → boot=2`);

      const off = await cloud.run(id, 'power-off', { force: false }, 120_000);
      assert.equal(off.status, 'succeeded');
      await assertStopped(id, pid1);
      assert.equal(lastStopHow(id), 'acpi', 'stopped by the ACPI button, not forced');
      const log = cloud.consoleLog(id);
      assert.ok(log.lastIndexOf(`KUMO-SHUTDOWN vm=${id}`) > log.lastIndexOf(`KUMO-BOOT vm=${id} boot=2`), 'the guest ran its shutdown after boot 2');
      say(`${id}: ACPI power-off done`);

      await cloud.run(id, 'power-on');
      const pid2 = cloud.qemuPid(id);
      assert.ok(pid2 && pid2 !== pid1, 'a new QEMU');
      assert.equal(await cloud.waitBoot(id, 3), 3);
      say(`${id}: powered on again → boot=3`);

      const forced = await cloud.run(id, 'power-off', { force: true });
      assert.equal(forced.status, 'succeeded');
      await assertStopped(id, pid2!);
      assert.equal(lastStopHow(id), 'forced');
    });

    it('kill -9 of a QEMU: the VM becomes error with a vm.error event; powerOnVm recovers it (boot marker again)', { timeout: 400_000 }, async () => {
      requireBooted();
      if (!agentBack) throw new Error('the agent did not come back (see the agent test)');
      const id = vm.C;
      await cloud.run(id, 'power-on');
      const boot = await cloud.waitBoot(id, 2);
      const pid = cloud.qemuPid(id)!;
      const seq = events!.lastSeq;
      say(`${id}: boot=${boot}, kill -9 ${pid}`);
      process.kill(pid, 'SIGKILL');

      const ev = await waitFor('a vm.error event', async () => events!.find('vm.error', id, seq), 30_000, 100);
      assert.equal(ev.tenantId !== null, true);
      const s = await cloud.status(id);
      assert.deepEqual([s.status, s.power], ['error', 'off'], JSON.stringify(s));
      assert.equal(cloud.qemuPid(id), null);

      const on = await cloud.run(id, 'power-on');
      assert.equal(on.status, 'succeeded');
      assert.equal((await cloud.status(id)).status, 'running');
      const again = await cloud.waitBoot(id, boot + 1);
      assert.ok(again > boot, `a new boot marker (boot=${again})`);
      say(`${id}: recovered → boot=${again}`);
      const pid2 = cloud.qemuPid(id)!;
      await cloud.run(id, 'power-off', { force: true });
      await assertStopped(id, pid2);
    });
  });
});
