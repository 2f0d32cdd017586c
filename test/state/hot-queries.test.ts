import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { KumoError, faultName } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { Precompiled, StatementCache, now, type Db } from '../../src/state/db.js';
import { forEachDb, newTenant } from '../helpers/db.js';

describe('StatementCache (SQLite)', () => {
  const withRaw = (fn: (raw: Database.Database) => void) => {
    const dir = mkdtempSync(join(tmpdir(), 'kumo-stmts-'));
    const raw = new Database(join(dir, 'x.db'));
    try {
      raw.exec('create table t (n integer primary key, s text)');
      fn(raw);
    } finally {
      if (raw.open) raw.close();
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('hands out the same statement for the same SQL, and it runs again with new parameters', () => withRaw((raw) => {
    const c = new StatementCache(raw);
    const ins = c.prepare('insert into t (n, s) values (?, ?)');
    assert.equal(c.prepare('insert into t (n, s) values (?, ?)'), ins);
    assert.equal(ins.reader, false);
    assert.equal(ins.run([1, 'a']).changes, 1);
    assert.equal(c.prepare('insert into t (n, s) values (?, ?)').run([2, 'b']).lastInsertRowid, 2);
    const sel = c.prepare('select s from t where n = ?');
    assert.equal(sel.reader, true);
    assert.deepEqual(sel.all([1]), [{ s: 'a' }]);
    assert.deepEqual(c.prepare('select s from t where n = ?').all([2]), [{ s: 'b' }]);
    // A statement that failed (constraint) is reset and runs again.
    assert.throws(() => ins.run([1, 'dup']), /UNIQUE/);
    assert.equal(ins.run([3, 'c']).changes, 1);
  }));

  it('keeps at most `size` statements, dropping the least recently used', () => withRaw((raw) => {
    const c = new StatementCache(raw, 2);
    const a = c.prepare('select 1 as a');
    const b = c.prepare('select 2 as b');
    assert.equal(c.prepare('select 1 as a'), a); // a is now the most recent
    c.prepare('select 3 as c'); // evicts b
    assert.equal(c.cached, 2);
    assert.equal(c.prepare('select 1 as a'), a);
    assert.notEqual(c.prepare('select 2 as b'), b);
    assert.deepEqual(b.all([]), [{ b: 2 }], 'an evicted statement still works for whoever holds it');
  }));

  it('gives a fresh statement while the kept one is busy iterating', () => withRaw((raw) => {
    const c = new StatementCache(raw);
    c.prepare('insert into t (n, s) values (?, ?)').run([1, 'a']);
    c.prepare('insert into t (n, s) values (?, ?)').run([2, 'b']);
    const sql = 'select n from t order by n';
    const it = c.prepare(sql).iterate([]);
    assert.deepEqual(it.next().value, { n: 1 });
    const other = c.prepare(sql);
    assert.deepEqual(other.all([]), [{ n: 1 }, { n: 2 }]);
    assert.deepEqual(it.next().value, { n: 2 });
    assert.equal(it.next().done, true);
    assert.deepEqual(c.prepare(sql).all([]), [{ n: 1 }, { n: 2 }]);
  }));

  it('closes the database', () => withRaw((raw) => {
    const c = new StatementCache(raw);
    c.prepare('select 1');
    c.close();
    assert.equal(raw.open, false);
    assert.equal(c.cached, 0);
  }));
});

async function fault(p: Promise<unknown>, code: string, msg: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof KumoError, String(e));
    assert.equal(faultName(e.code), code, e.message);
    assert.match(e.message, msg);
    return true;
  });
}

/** getVmInfo as it was before its queries were folded: the VM row, then disks, NICs, addresses, comment and zone each on their own. */
async function infoReference(db: Db, vmId: string) {
  const vm = await db.k.selectFrom('vms').selectAll().where('id', '=', vmId).executeTakeFirstOrThrow();
  const zoneName = async (id: string | null) => (id ? (await db.k.selectFrom('zones').select('name').where('id', '=', id).executeTakeFirstOrThrow()).name : '');
  const [disks, nics, addrs, comment, zone] = await Promise.all([
    db.k.selectFrom('vm_disks').innerJoin('volumes', 'volumes.id', 'vm_disks.volume_id')
      .select(['vm_disks.slot', 'vm_disks.volume_id', 'volumes.size_gib']).where('vm_disks.vm_id', '=', vmId).orderBy('vm_disks.slot').execute(),
    db.k.selectFrom('vm_nics').selectAll().where('vm_id', '=', vmId).orderBy('slot').execute(),
    db.k.selectFrom('nic_addresses').selectAll().where('vm_id', '=', vmId).orderBy('ip').execute(),
    db.k.selectFrom('comments').select('comment').where('resource_id', '=', vmId).executeTakeFirst(),
    vm.zone_id || !vm.host_id
      ? zoneName(vm.zone_id)
      : db.k.selectFrom('hosts').select('zone_id').where('id', '=', vm.host_id).executeTakeFirst().then((h) => zoneName(h?.zone_id ?? null)),
  ]);
  return {
    vmId: vm.id, name: vm.name, type: vm.type, architecture: vm.architecture, resourceType: vm.resource_type,
    vcpus: vm.vcpus, memoryMiB: vm.memory_mib, status: vm.status, power: vm.power, zone, host: vm.host_id ?? '',
    disks: disks.map((d) => ({ slot: d.slot, volumeId: d.volume_id, sizeGiB: d.size_gib })),
    nics: nics.map((n) => ({ slot: n.slot, networkId: n.network_id, mac: n.mac, ipAddresses: addrs.filter((a) => a.slot === n.slot).map((a) => a.ip) })),
    createdAt: vm.created_at, comment: comment?.comment ?? '',
  };
}

forEachDb('hot queries', (env) => {
  it('Precompiled runs the query it was built from, with new arguments, on the store and in transactions', async () => {
    const k = env.db.k;
    await k.insertInto('settings').values([{ key: 'pc-a', value: 'x' }, { key: 'pc-b', value: 'y' }, { key: 'pc-c', value: 'x' }]).execute();
    // An argument used twice and constants of the query's own (the `in` list) kept where they are.
    const q = new Precompiled((db, key: string, value: string) => db.selectFrom('settings').select(['key', 'value'])
      .where((eb) => eb.or([eb('key', '=', key), eb('value', '=', value), eb('key', '=', key)]))
      .where('key', 'in', ['pc-a', 'pc-b', 'pc-c']).orderBy('key'));
    assert.deepEqual(await q.execute(env.db, k, 'pc-b', 'x'), [{ key: 'pc-a', value: 'x' }, { key: 'pc-b', value: 'y' }, { key: 'pc-c', value: 'x' }]);
    assert.deepEqual(await q.execute(env.db, k, 'pc-b', 'none'), [{ key: 'pc-b', value: 'y' }]);
    assert.equal(await q.first(env.db, k, 'nope', 'none'), undefined);
    await k.transaction().execute(async (trx) => {
      await trx.updateTable('settings').set({ value: 'z' }).where('key', '=', 'pc-b').execute();
      assert.deepEqual(await q.first(env.db, trx, 'pc-b', 'none'), { key: 'pc-b', value: 'z' }, 'sees the transaction\'s own write');
    });
    // Text that looks like SQL or like a placeholder is only ever a value (PostgreSQL text cannot hold NUL at all).
    assert.deepEqual(await q.execute(env.db, k, "' or 1=1 --", env.dialect === 'sqlite' ? '\u0000precompiled argument 0\u0000' : '$1'), []);
    const unused = new Precompiled((db, _key: string) => db.selectFrom('settings').select('key').where('key', '=', 'fixed'));
    await assert.rejects(unused.execute(env.db, k, 'pc-a'), /does not use argument 0/);
  });

  it('getVmInfo gives what the one-query-per-part version gave: zone via host, NICs with and without addresses, comment', async () => {
    const s = env.services;
    const k = env.db.k;
    const t = await newTenant(s, 'hot-info', { vms: 10, vcpus: 100, memoryMiB: 1e6, volumes: 10, volumeGiB: 1e5 });
    const at = now();
    await k.insertInto('zones').values([{ id: 'zone-00000000000a', name: 'hot-a', created_at: at }, { id: 'zone-00000000000b', name: 'hot-b', created_at: at }]).execute();
    const host = {
      zone_id: 'zone-00000000000b', vcpus: 8, memory_mib: 8192, pool: 'shared' as const, dedicated_tenant: null, maintenance: 0, architectures: 'x86_64',
      driver: 'sim', accel: 'sim', agent_url: 'http://127.0.0.1:9', node_token: 'x', status: 'up' as const, last_seen: at, created_at: at,
    };
    await k.insertInto('hosts').values({ id: 'host-00000000000b', name: 'hot-host-b', ...host }).execute();
    await k.insertInto('networks').values([
      { id: 'net-00000000000a', tenant_id: t.tenantId, name: 'hot-net-a', kind: 'private', cidr: '10.9.0.0/24', gateway: '10.9.0.1', vni: 9001, created_at: at },
      { id: 'net-00000000000b', tenant_id: t.tenantId, name: 'hot-net-b', kind: 'private', cidr: '10.8.0.0/24', gateway: '10.8.0.1', vni: 9002, created_at: at },
    ]).execute();

    const plain = await s.vms.allocate(t, { type: 'be.small' });
    const zoned = await s.vms.allocate(t, { type: 'be.small', zone: 'hot-a' });
    const placed = await s.vms.allocate(t, { type: 'be.small' });
    const placedZoned = await s.vms.allocate(t, { type: 'be.small', zone: 'hot-a' });
    const orphan = await s.vms.allocate(t, { type: 'be.small' });
    await k.updateTable('vms').set({ host_id: 'host-00000000000b' }).where('id', 'in', [placed, placedZoned]).execute();
    await k.updateTable('vms').set({ host_id: 'host-gone0000000' }).where('id', '=', orphan).execute();
    await k.insertInto('vm_nics').values([
      { vm_id: placed, slot: 0, network_id: 'net-00000000000a', mac: '02:00:00:00:0a:00' },
      { vm_id: placed, slot: 1, network_id: 'net-00000000000b', mac: '02:00:00:00:0a:01' },
      { vm_id: placed, slot: 3, network_id: 'net-00000000000a', mac: '02:00:00:00:0a:03' },
      { vm_id: zoned, slot: 0, network_id: 'net-00000000000a', mac: '02:00:00:00:0b:00' },
    ]).execute();
    await k.insertInto('nic_addresses').values([
      { vm_id: placed, slot: 0, network_id: 'net-00000000000a', ip: '10.9.0.20' },
      { vm_id: placed, slot: 0, network_id: 'net-00000000000a', ip: '10.9.0.3' },
      { vm_id: placed, slot: 3, network_id: 'net-00000000000a', ip: '10.9.0.100' },
      { vm_id: zoned, slot: 0, network_id: 'net-00000000000a', ip: '10.9.0.7' },
    ]).execute();
    await s.comments.set(t, placed, 'web <1> & "more"');

    for (const vm of [plain, zoned, placed, placedZoned, orphan]) {
      assert.deepEqual(await s.vms.info(t, vm), await infoReference(env.db, vm), vm);
    }
    const info = await s.vms.info(t, placed);
    assert.equal(info.zone, 'hot-b');
    assert.deepEqual(info.nics.map((n) => [n.slot, n.ipAddresses]), [[0, ['10.9.0.20', '10.9.0.3']], [1, []], [3, ['10.9.0.100']]]);
    assert.equal(info.comment, 'web <1> & "more"');
    assert.equal((await s.vms.info(t, placedZoned)).zone, 'hot-a');
    assert.equal((await s.vms.info(t, orphan)).zone, '');

    // Faults as before: another tenant's VM and a missing one are not found; so is a VM's zone that is gone.
    const other: Principal = { ...t, tenantId: 'tenant-000000000000' };
    await fault(s.vms.info(other, placed), 'NOT_FOUND', new RegExp(placed));
    await fault(s.vms.info(t, 'vm-000000000000'), 'NOT_FOUND', /vm-000000000000/);
    await fault(s.vms.status(other, placed), 'NOT_FOUND', new RegExp(placed));
    await k.updateTable('vms').set({ zone_id: 'zone-gone0000000' }).where('id', '=', plain).execute();
    await fault(s.vms.info(t, plain), 'NOT_FOUND', /zone-gone0000000/);
  });

  it('getVmStatus names the oldest active request', async () => {
    const s = env.services;
    const t = await newTenant(s, 'hot-status');
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    assert.deepEqual(await s.vms.status(t, vm), { vmId: vm, power: 'off', status: 'stopped', requestId: '' });
    const ids = await env.db.k.transaction().execute(async (trx) => [
      await s.requests.submit(trx, t.tenantId, 'resetVm', vm, {}),
      await s.requests.submit(trx, t.tenantId, 'powerOnVm', vm, {}),
    ]);
    // Keep the engine (none runs here) from mattering: mark them as a request engine would.
    await env.db.k.updateTable('requests').set({ status: 'running' }).where('id', '=', ids[1]).execute();
    assert.equal((await s.vms.status(t, vm)).requestId, ids[0]);
    await env.db.k.updateTable('requests').set({ status: 'succeeded' }).where('id', '=', ids[0]).execute();
    assert.equal((await s.vms.status(t, vm)).requestId, ids[1]);
  });
});
