/**
 * 0004_ukai on a store that already has rows: interim local volumes lose their host pin and gain a
 * block size, stub storage nodes get the new columns' defaults.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { openDb, type Dialect } from '../../src/state/db.js';
import { migrations } from '../../src/state/migrations.js';
import { scratchStore } from './scratch-store.js';

async function oldStore(dialect: Dialect, url: string): Promise<void> {
  const k = new Kysely<any>({
    dialect: dialect === 'sqlite' ? new SqliteDialect({ database: new Database(url) }) : new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }),
  });
  try {
    const r = await new Migrator({ db: k, provider: { getMigrations: async () => migrations(dialect) } }).migrateTo('0003_last_host');
    if (r.error) throw r.error;
    const at = new Date().toISOString();
    await k.insertInto('zones').values({ id: 'zone-000000000001', name: 'z', created_at: at }).execute();
    await k.insertInto('tenants').values({ id: 'tenant-000000000001', name: 't', quota: '{}', created_at: at }).execute();
    await k.insertInto('volumes').values({
      id: 'vol-000000000001', tenant_id: 'tenant-000000000001', name: 'v', size_gib: 1, class: 'best-effort', iops: 0, replicas: 1,
      zone_id: null, encrypted: 0, system: 0, created_at: at, local_host: 'host-000000000001',
    }).execute();
    await k.insertInto('storage_nodes').values({ id: 'node-000000000001', zone_id: 'zone-000000000001', name: 'old', status: 'up', created_at: at }).execute();
  } finally {
    await k.destroy();
  }
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`0004_ukai on an existing store [${dialect}]`, () => {
    it('keeps volumes and nodes, drops local_host, adds the block size and node columns', { skip: dialect === 'postgres' && !process.env.KUMO_TEST_PG && 'needs KUMO_TEST_PG (node dist/test/run.js sets it)' }, async () => {
      const { url, cleanup } = await scratchStore(dialect);
      try {
        await oldStore(dialect, url);
        const db = await openDb(url);
        try {
          const v = await db.k.selectFrom('volumes').selectAll().where('id', '=', 'vol-000000000001').executeTakeFirstOrThrow();
          assert.equal(v.block_size, 4194304);
          assert.ok(!('local_host' in v));
          const n = await db.k.selectFrom('storage_nodes').selectAll().executeTakeFirstOrThrow();
          assert.deepEqual([n.host, n.port, n.node_token, Number(n.total_bytes), Number(n.free_bytes), n.last_seen], ['', 0, null, 0, 0, '']);
          const tables = ['volume_locations', 'volume_blocks', 'object_replicas', 'volume_leases', 'storage_garbage'];
          for (const t of tables) await sql`select count(*) from ${sql.table(t)}`.execute(db.k);
        } finally {
          await db.close();
        }
      } finally {
        await cleanup();
      }
    });
  });
}
