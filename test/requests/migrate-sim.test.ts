/**
 * migrateVm and drainHost as the controller runs them, on sim hosts (fast; the QEMU end-to-end
 * tests prove the same flows with real guests): placement of the destination, the pre-copy
 * prediction's refusal, cancelRequest rolling back mid-migration, and a drain emptying a host.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fault } from '../../src/core/errors.js';
import { SimDriver } from '../../src/compute/sim/driver.js';
import { SYSTEM, type Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { InProcessCloud } from '../services/fixtures.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

forEachDb('live migration and drains on sim hosts', (env) => {
  let t: Principal;
  let cloud: InProcessCloud;
  // 512 MiB at 256 MiB/s: an idle be.small takes about 2 s of modelled time to move, 0.6 s here (migrationScale 0.3).
  const drivers = ['sim-1', 'sim-2', 'sim-3'].map(() => new SimDriver({ bootMs: 10, shutdownMs: 10, migrationScale: 0.3 }));
  const hostIds: string[] = [];

  before(async () => {
    t = await newTenant(env.services, 'movers');
    cloud = new InProcessCloud(env.services, {
      driver: drivers[0], moreHosts: [{ name: 'sim-2', driver: drivers[1] }, { name: 'sim-3', driver: drivers[2] }],
      migration: { maxBandwidthBytes: 256 * MiB, completionTimeoutMs: 20_000 },
    });
    await cloud.start();
    for (const name of ['sim-1', 'sim-2', 'sim-3']) {
      hostIds.push((await env.db.k.selectFrom('hosts').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id);
    }
  });
  after(() => cloud.stop());

  const s = () => env.services;
  const maintenance = (i: number, on: boolean) => s().hosts.setMaintenance(SYSTEM, hostIds[i], on);
  const onHost = async (vmId: string) => (await s().vms.info(t, vmId)).host;
  const simRuns = async (i: number, vmId: string) => (await drivers[i].list()).some((v) => v.vmId === vmId);

  /** Boots `n` be.small VMs on sim-1 (the others in maintenance meanwhile). */
  async function bootOnFirst(n: number): Promise<string[]> {
    await maintenance(1, true);
    await maintenance(2, true);
    try {
      const vms: string[] = [];
      for (let i = 0; i < n; i++) {
        const vm = await s().vms.allocate(t, { type: 'be.small' });
        assert.equal((await cloud.finish(t, await s().vms.powerOn(t, vm))).status, 'succeeded');
        vms.push(vm);
      }
      return vms;
    } finally {
      await maintenance(1, false);
      await maintenance(2, false);
    }
  }

  it('moves a running VM to the host the scheduler picks, with the numbers in the result', async () => {
    const [vm] = await bootOnFirst(1);
    const r = await cloud.finish(t, await s().vms.migrate(t, vm, {}), 30);
    assert.equal(r.status, 'succeeded', JSON.stringify(r.error));
    const res = r.result as { host: string; from: string; transferredBytes: number; predicted: { converges: boolean } };
    assert.equal(res.from, hostIds[0]);
    assert.notEqual(res.host, hostIds[0]);
    assert.equal(await onHost(vm), res.host);
    assert.ok(res.transferredBytes >= 512 * MiB);
    assert.equal(res.predicted.converges, true);
    const dest = hostIds.indexOf(res.host);
    assert.equal(await simRuns(dest, vm), true);
    assert.equal(await simRuns(0, vm), false, 'the source copy is gone');
    assert.equal((await s().vms.info(t, vm)).status, 'running');
  });

  it('refuses a VM predicted not to converge, with the numbers, and leaves it running where it was', async () => {
    const [vm] = await bootOnFirst(1);
    // Even auto-converge's 99 % throttle leaves more than the bandwidth dirtied.
    drivers[0].setDirtyRate(vm, 200 * GiB);
    try {
      await refused(vm);
    } finally {
      drivers[0].setDirtyRate(vm, 0);
    }
  });

  async function refused(vm: string): Promise<void> {
    const r = await cloud.finish(t, await s().vms.migrate(t, vm, {}), 30);
    assert.equal(r.status, 'failed');
    assert.equal((r.error as { code: number }).code, Fault.INVALID_STATE);
    assert.match((r.error as { message: string }).message, /would not converge/);
    assert.match((r.error as { message: string }).message, /GiB\/s|MiB\/s/);
    assert.equal(await onHost(vm), hostIds[0]);
    assert.equal((await s().vms.info(t, vm)).status, 'running');
    assert.equal(await simRuns(1, vm) || await simRuns(2, vm), false);
  }

  it('rolls a running migration back on cancelRequest: the VM stays at its source, the destination holds nothing', async () => {
    const [vm] = await bootOnFirst(1);
    // 64 MiB/s of dirtying against 256 MiB/s: several passes, so the pre-copy is still running when cancelled.
    drivers[0].setDirtyRate(vm, 64 * MiB);
    const id = await s().vms.migrate(t, vm, {});
    for (let i = 0; ; i++) {
      const r = await s().requests.get(t, id);
      if (r.status === 'running' && /pass \d+/.test(r.message)) break;
      assert.ok(i < 200 && r.status !== 'failed' && r.status !== 'succeeded', `the migration never reached its pre-copy: ${JSON.stringify(r)}`);
      await sleep(50);
    }
    assert.equal(await s().requests.cancel(t, id), true);
    const r = await cloud.finish(t, id, 30);
    assert.equal(r.status, 'cancelled', JSON.stringify(r));
    assert.equal(await onHost(vm), hostIds[0]);
    assert.equal((await s().vms.info(t, vm)).status, 'running');
    assert.equal(await simRuns(0, vm), true);
    assert.equal(await simRuns(1, vm) || await simRuns(2, vm), false);
    const row = await env.db.k.selectFrom('vms').select('migration_host_id').where('id', '=', vm).executeTakeFirstOrThrow();
    assert.equal(row.migration_host_id, null, 'the destination\'s capacity is given back');
    drivers[0].setDirtyRate(vm, 0);
  });

  it('a controller restart during the pre-copy: the resumed request undoes the half-done migration and completes it', async () => {
    const [vm] = await bootOnFirst(1);
    drivers[0].setDirtyRate(vm, 64 * MiB);
    try {
      const id = await s().vms.migrate(t, vm, {});
      for (let i = 0; ; i++) {
        const r = await s().requests.get(t, id);
        if (r.status === 'running' && /pass \d+/.test(r.message)) break;
        assert.ok(i < 200 && r.status === 'queued' || r.status === 'running', `the migration never reached its pre-copy: ${JSON.stringify(r)}`);
        await sleep(50);
      }
      await cloud.restartEngine();
      const r = await cloud.finish(t, id, 60);
      assert.equal(r.status, 'succeeded', JSON.stringify(r));
      const to = (r.result as { host: string }).host;
      assert.notEqual(to, hostIds[0]);
      assert.equal(await onHost(vm), to);
      // One copy of the VM runs, at its new host; neither the first destination nor the source kept one.
      const running = await Promise.all(drivers.map((d) => d.list().then((l) => l.some((v) => v.vmId === vm))));
      assert.deepEqual(running, hostIds.map((h) => h === to));
      const row = await env.db.k.selectFrom('vms').select(['status', 'migration_host_id']).where('id', '=', vm).executeTakeFirstOrThrow();
      assert.deepEqual(row, { status: 'running', migration_host_id: null });
    } finally {
      drivers[0].setDirtyRate(vm, 0);
    }
  });

  it('drains a host: a VM that cannot move is listed with the reason; once it can, the host ends empty and in maintenance', async () => {
    // Whatever earlier cases left on sim-1 is drained with the three booted here.
    const [stuck] = await bootOnFirst(3);
    const all = (await env.db.k.selectFrom('vms').select('id').where('host_id', '=', hostIds[0]).execute()).map((v) => v.id);
    drivers[0].setDirtyRate(stuck, 200 * GiB);
    const first = await cloud.finish(SYSTEM, await s().hosts.drain(SYSTEM, hostIds[0], s().requests), 60);
    drivers[0].setDirtyRate(stuck, 0);
    assert.equal(first.status, 'succeeded', JSON.stringify(first.error));
    const r1 = first.result as { moved: { vmId: string; to: string }[]; cannotMove: { vmId: string; code: string; reason: string }[]; empty: boolean };
    assert.deepEqual(r1.cannotMove.map((c) => [c.vmId, c.code]), [[stuck, 'INVALID_STATE']]);
    assert.match(r1.cannotMove[0].reason, /would not converge/);
    assert.deepEqual(r1.moved.map((m) => m.vmId).sort(), all.filter((v) => v !== stuck).sort());
    assert.ok(r1.moved.every((m) => m.to !== hostIds[0]));
    assert.equal(r1.empty, false);
    assert.equal((await s().hosts.info(SYSTEM, hostIds[0])).maintenance, true);

    const second = await cloud.finish(SYSTEM, await s().hosts.drain(SYSTEM, hostIds[0], s().requests), 60);
    assert.equal(second.status, 'succeeded', JSON.stringify(second.error));
    const r2 = second.result as { moved: { vmId: string }[]; cannotMove: unknown[]; empty: boolean };
    assert.deepEqual([r2.moved.map((m) => m.vmId), r2.cannotMove, r2.empty], [[stuck], [], true]);
    assert.deepEqual(await env.db.k.selectFrom('vms').select('id').where('host_id', '=', hostIds[0]).execute(), []);
    assert.deepEqual(await drivers[0].list(), []);
  });
});
