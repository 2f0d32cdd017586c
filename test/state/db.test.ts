import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { openDb, now } from '../../src/state/db.js';
import { forEachDb } from '../helpers/db.js';

forEachDb('state store', (env) => {
  it('migrates once: reopening a store keeps its rows and runs no migration twice', async () => {
    await env.db.k.insertInto('settings').values({ key: 'probe', value: 'kept' }).execute();
    const again = await openDb(env.url);
    try {
      const row = await again.k.selectFrom('settings').select('value').where('key', '=', 'probe').executeTakeFirst();
      assert.equal(row?.value, 'kept');
      const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(again.k);
      assert.deepEqual(applied.rows.map((r) => r.name), ['0001_initial', '0002_images', '0003_last_host', '0004_ukai', '0005_sdn', '0006_migration', '0007_guest_config', '0008_user_data']);
    } finally {
      await again.close();
    }
  });

  if (env.dialect === 'sqlite') {
    it('runs SQLite in WAL mode with foreign keys on', async () => {
      const [mode] = (await sql<{ journal_mode: string }>`pragma journal_mode`.execute(env.db.k)).rows;
      assert.equal(mode.journal_mode, 'wal');
      const [fk] = (await sql<{ foreign_keys: number }>`pragma foreign_keys`.execute(env.db.k)).rows;
      assert.equal(fk.foreign_keys, 1);
    });
  }

  it('enforces the same constraints on both backends (unique VNI, foreign keys)', async () => {
    const net = (id: string, vni: number) => ({ id, tenant_id: null, name: id, kind: 'private' as const, cidr: '10.0.0.0/20', gateway: '10.0.0.1', vni, created_at: now() });
    await env.db.k.insertInto('networks').values(net('net-000000000001', 5000)).execute();
    await assert.rejects(env.db.k.insertInto('networks').values(net('net-000000000002', 5000)).execute());
    await assert.rejects(env.db.k.insertInto('vm_nics').values({ vm_id: 'vm-nosuchvm0000', slot: 0, network_id: 'net-000000000001', mac: '02:00:00:00:00:01' }).execute());
  });

  it('lock() makes a second transaction on the same name wait for the first to commit', async () => {
    const order: string[] = [];
    const first = env.db.k.transaction().execute(async (trx) => {
      await env.db.lock(trx, 'probe');
      order.push('first locked');
      await sleep(150);
      await trx.insertInto('settings').values({ key: 'lock-probe', value: 'first' }).execute();
      order.push('first done');
    });
    await sleep(30);
    const second = env.db.k.transaction().execute(async (trx) => {
      await env.db.lock(trx, 'probe');
      order.push('second locked');
      return (await trx.selectFrom('settings').select('value').where('key', '=', 'lock-probe').executeTakeFirst())?.value;
    });
    const [, seen] = await Promise.all([first, second]);
    assert.deepEqual(order, ['first locked', 'first done', 'second locked']);
    assert.equal(seen, 'first');
  });
});
