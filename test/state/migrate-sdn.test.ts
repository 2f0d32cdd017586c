/**
 * 0005_sdn: on a store that already has zones and hosts, hosts get no edge and the 'eth0' uplink,
 * zones no gateway; the store itself keeps one gateway zone, one host per edge port and one zone
 * per underlay address, whatever a controller's code does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { openDb, type Dialect } from '../../src/state/db.js';
import { migrations } from '../../src/state/migrations.js';
import { scratchStore } from './scratch-store.js';

const at = new Date().toISOString();
const host = (id: string, zone: string, name: string) => ({
  id, zone_id: zone, name, vcpus: 4, memory_mib: 4096, pool: 'shared', dedicated_tenant: null, maintenance: 0, architectures: 'x86_64',
  driver: 'sim', accel: 'sim', agent_url: 'http://127.0.0.1:9', node_token: `tok-${id}`, status: 'up', last_seen: at, created_at: at,
});

async function oldStore(dialect: Dialect, url: string): Promise<void> {
  const k = new Kysely<any>({
    dialect: dialect === 'sqlite' ? new SqliteDialect({ database: new Database(url) }) : new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }),
  });
  try {
    const r = await new Migrator({ db: k, provider: { getMigrations: async () => migrations(dialect) } }).migrateTo('0004_ukai');
    if (r.error) throw r.error;
    await k.insertInto('zones').values([{ id: 'zone-000000000001', name: 'a', created_at: at }, { id: 'zone-000000000002', name: 'b', created_at: at }]).execute();
    await k.insertInto('hosts').values([host('host-000000000001', 'zone-000000000001', 'h1'), host('host-000000000002', 'zone-000000000001', 'h2')]).execute();
  } finally {
    await k.destroy();
  }
}

const rejects = async (p: Promise<unknown>) => assert.rejects(p, (e: Error) => /unique|UNIQUE/.test(e.message));

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`0005_sdn [${dialect}]`, () => {
    it('adds the topology to an existing store, with the store enforcing its uniqueness rules', { skip: dialect === 'postgres' && !process.env.KUMO_TEST_PG && 'needs KUMO_TEST_PG (node dist/test/run.js sets it)' }, async () => {
      const { url, cleanup } = await scratchStore(dialect);
      try {
        await oldStore(dialect, url);
        const db = await openDb(url);
        try {
          const hosts = await db.k.selectFrom('hosts').select(['id', 'edge_id', 'edge_port', 'uplink']).orderBy('id').execute();
          assert.deepEqual(hosts.map((h) => [h.edge_id, h.edge_port, h.uplink]), [[null, null, 'eth0'], [null, null, 'eth0']]);
          const zones = await db.k.selectFrom('zones').select(['gateway_underlay_ip', 'gateway_downlink', 'gateway_zone']).execute();
          assert.deepEqual(zones.map((z) => [z.gateway_underlay_ip, z.gateway_downlink, z.gateway_zone]), [[null, null, 0], [null, null, 0]]);

          await db.k.insertInto('edges').values({ id: 'edge-000000000001', zone_id: 'zone-000000000001', name: 'tor', uplink: 'swp48', mac_budget: 10, created_at: at }).execute();
          await rejects(db.k.insertInto('edges').values({ id: 'edge-000000000002', zone_id: 'zone-000000000001', name: 'tor', uplink: 'x', mac_budget: 1, created_at: at }).execute());
          await db.k.updateTable('hosts').set({ edge_id: 'edge-000000000001', edge_port: 'swp1' }).where('id', '=', 'host-000000000001').execute();
          await rejects(db.k.updateTable('hosts').set({ edge_id: 'edge-000000000001', edge_port: 'swp1' }).where('id', '=', 'host-000000000002').execute());
          await assert.rejects(db.k.updateTable('hosts').set({ edge_id: 'edge-00000000000f', edge_port: 'swp2' }).where('id', '=', 'host-000000000002').execute(), 'an edge that does not exist');

          await db.k.updateTable('zones').set({ gateway_zone: 1 }).where('id', '=', 'zone-000000000001').execute();
          await rejects(db.k.updateTable('zones').set({ gateway_zone: 1 }).where('id', '=', 'zone-000000000002').execute());
          await db.k.updateTable('zones').set({ gateway_underlay_ip: '192.0.2.1' }).where('id', '=', 'zone-000000000001').execute();
          await rejects(db.k.updateTable('zones').set({ gateway_underlay_ip: '192.0.2.1' }).where('id', '=', 'zone-000000000002').execute());
        } finally {
          await db.close();
        }
      } finally {
        await cleanup();
      }
    });
  });
}
