import { sql, type Kysely, type Migration } from 'kysely';
import type { Dialect } from './db.js';

/** Migrations are code, keyed by name in order; each must run unchanged on SQLite and PostgreSQL. */
export function migrations(dialect: Dialect): Record<string, Migration> {
  // SQLite and PostgreSQL spell an auto-increment key differently; everything else is portable.
  const serial = (db: Kysely<any>, table: string) =>
    dialect === 'postgres'
      ? db.schema.createTable(table).addColumn('seq', 'serial', (c) => c.primaryKey())
      : db.schema.createTable(table).addColumn('seq', 'integer', (c) => c.primaryKey().autoIncrement());

  return {
    '0001_initial': {
      async up(db: Kysely<any>) {
        await db.schema.createTable('settings')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('zones')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('created_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('hosts')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('zone_id', 'text', (c) => c.notNull().references('zones.id'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('vcpus', 'integer', (c) => c.notNull())
          .addColumn('memory_mib', 'integer', (c) => c.notNull())
          .addColumn('pool', 'text', (c) => c.notNull())
          .addColumn('dedicated_tenant', 'text')
          .addColumn('maintenance', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('architectures', 'text', (c) => c.notNull())
          .addColumn('driver', 'text', (c) => c.notNull())
          .addColumn('accel', 'text', (c) => c.notNull())
          .addColumn('agent_url', 'text', (c) => c.notNull())
          .addColumn('node_token', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('last_seen', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('hosts_zone_name', ['zone_id', 'name']).execute();
        await db.schema.createTable('tenants')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('quota', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('api_users')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull().unique())
          .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
          .addColumn('key_hash', 'text', (c) => c.notNull().unique())
          .addColumn('admin', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('vm_types')
          .addColumn('name', 'text', (c) => c.primaryKey())
          .addColumn('vcpus', 'integer', (c) => c.notNull())
          .addColumn('memory_mib', 'integer', (c) => c.notNull())
          .addColumn('system_disk_gib', 'integer', (c) => c.notNull())
          .addColumn('resource_type', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('vms')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('type', 'text', (c) => c.notNull())
          .addColumn('architecture', 'text', (c) => c.notNull())
          .addColumn('resource_type', 'text', (c) => c.notNull())
          .addColumn('vcpus', 'integer', (c) => c.notNull())
          .addColumn('memory_mib', 'integer', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('power', 'text', (c) => c.notNull())
          .addColumn('zone_id', 'text')
          .addColumn('host_id', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createIndex('vms_tenant').on('vms').column('tenant_id').execute();
        await db.schema.createIndex('vms_host').on('vms').column('host_id').execute();
        await db.schema.createTable('volumes')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('size_gib', 'integer', (c) => c.notNull())
          .addColumn('class', 'text', (c) => c.notNull())
          .addColumn('iops', 'integer', (c) => c.notNull())
          .addColumn('replicas', 'integer', (c) => c.notNull())
          .addColumn('zone_id', 'text')
          .addColumn('encrypted', 'integer', (c) => c.notNull())
          .addColumn('system', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createIndex('volumes_tenant').on('volumes').column('tenant_id').execute();
        await db.schema.createTable('vm_disks')
          .addColumn('vm_id', 'text', (c) => c.notNull().references('vms.id'))
          .addColumn('slot', 'integer', (c) => c.notNull())
          .addColumn('volume_id', 'text', (c) => c.notNull().unique().references('volumes.id'))
          .addPrimaryKeyConstraint('vm_disks_pk', ['vm_id', 'slot']).execute();
        await db.schema.createTable('networks')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant_id', 'text')
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('cidr', 'text', (c) => c.notNull())
          .addColumn('gateway', 'text', (c) => c.notNull())
          .addColumn('vni', 'integer', (c) => c.unique())
          .addColumn('created_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('vm_nics')
          .addColumn('vm_id', 'text', (c) => c.notNull().references('vms.id'))
          .addColumn('slot', 'integer', (c) => c.notNull())
          .addColumn('network_id', 'text', (c) => c.notNull().references('networks.id'))
          .addColumn('mac', 'text', (c) => c.notNull().unique())
          .addPrimaryKeyConstraint('vm_nics_pk', ['vm_id', 'slot']).execute();
        await db.schema.createTable('nic_addresses')
          .addColumn('vm_id', 'text', (c) => c.notNull())
          .addColumn('slot', 'integer', (c) => c.notNull())
          .addColumn('network_id', 'text', (c) => c.notNull())
          .addColumn('ip', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('nic_addresses_pk', ['network_id', 'ip']).execute();
        await db.schema.createTable('network_zone_vlans')
          .addColumn('network_id', 'text', (c) => c.notNull().references('networks.id'))
          .addColumn('zone_id', 'text', (c) => c.notNull().references('zones.id'))
          .addColumn('vlan', 'integer', (c) => c.notNull())
          .addPrimaryKeyConstraint('network_zone_vlans_pk', ['network_id', 'zone_id'])
          .addUniqueConstraint('network_zone_vlans_vlan', ['zone_id', 'vlan']).execute();
        await db.schema.createTable('ip_allocations')
          .addColumn('network_id', 'text', (c) => c.notNull().references('networks.id'))
          .addColumn('ip', 'text', (c) => c.notNull())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('ip_allocations_pk', ['network_id', 'ip']).execute();
        await db.schema.createTable('images')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant_id', 'text')
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('os', 'text', (c) => c.notNull())
          .addColumn('size_gib', 'integer', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('storage_nodes')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('zone_id', 'text', (c) => c.notNull().references('zones.id'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull()).execute();
        await serial(db, 'requests')
          .addColumn('id', 'text', (c) => c.notNull().unique())
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('method', 'text', (c) => c.notNull())
          .addColumn('resource_id', 'text', (c) => c.notNull())
          .addColumn('params', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('progress', 'integer', (c) => c.notNull())
          .addColumn('message', 'text', (c) => c.notNull())
          .addColumn('result', 'text', (c) => c.notNull())
          .addColumn('error_code', 'integer')
          .addColumn('error_message', 'text', (c) => c.notNull())
          .addColumn('owner', 'text')
          .addColumn('lease_expires', 'text')
          .addColumn('attempts', 'integer', (c) => c.notNull())
          .addColumn('checkpoint', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('started_at', 'text')
          .addColumn('finished_at', 'text').execute();
        await db.schema.createIndex('requests_status').on('requests').columns(['status', 'seq']).execute();
        await db.schema.createIndex('requests_resource').on('requests').columns(['resource_id', 'status']).execute();
        await db.schema.createTable('resource_locks')
          .addColumn('resource_id', 'text', (c) => c.primaryKey())
          .addColumn('request_id', 'text', (c) => c.notNull())
          .addColumn('owner', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('comments')
          .addColumn('resource_id', 'text', (c) => c.primaryKey())
          .addColumn('comment', 'text', (c) => c.notNull()).execute();
        await serial(db, 'events')
          .addColumn('tenant_id', 'text')
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('resource_id', 'text', (c) => c.notNull())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('at', 'text', (c) => c.notNull()).execute();
        await sql`select 1`.execute(db);
      },
    },
    '0002_images': {
      // Images get their files (under the controller's data dir) and boot information; volumes
      // remember the image last restored onto them and, until kumo storage nodes hold volumes,
      // the host whose local disk keeps the volume's file. SQLite adds one column per statement.
      async up(db: Kysely<any>) {
        const add = (table: string, column: string, type: 'text' | 'bigint', build: (c: any) => any = (c) => c) =>
          db.schema.alterTable(table).addColumn(column, type, build).execute();
        await add('images', 'dir', 'text', (c) => c.notNull().defaultTo(''));
        await add('images', 'boot', 'text', (c) => c.notNull().defaultTo(''));
        await add('images', 'size_bytes', 'bigint', (c) => c.notNull().defaultTo(0));
        await add('images', 'sha256', 'text', (c) => c.notNull().defaultTo(''));
        await add('images', 'files', 'text', (c) => c.notNull().defaultTo('[]'));
        await add('volumes', 'image_id', 'text');
        await add('volumes', 'local_host', 'text');
        await db.schema.createIndex('images_name').on('images').columns(['name', 'tenant_id']).execute();
        await db.schema.createIndex('volumes_local_host').on('volumes').column('local_host').execute();
      },
    },
    '0003_last_host': {
      // A stopped or crashed VM gives its capacity back (host_id null) but its console output stays
      // on the agent of the host it last ran on; users read it to see why it stopped.
      async up(db: Kysely<any>) {
        await db.schema.alterTable('vms').addColumn('last_host_id', 'text').execute();
      },
    },
    '0004_ukai': {
      // UKAI volumes: storage nodes get their address, token and space; a volume's block map lives
      // here (DESIGN.md §6): blocks → objects → replicas per node, the volume's locations, its write
      // lease, and the objects nodes are to delete. The interim local volume files (local_host) go.
      async up(db: Kysely<any>) {
        const add = (table: string, column: string, type: 'text' | 'integer' | 'bigint', build: (c: any) => any = (c) => c) =>
          db.schema.alterTable(table).addColumn(column, type, build).execute();
        await add('storage_nodes', 'host', 'text', (c) => c.notNull().defaultTo(''));
        await add('storage_nodes', 'port', 'integer', (c) => c.notNull().defaultTo(0));
        await add('storage_nodes', 'node_token', 'text');
        await add('storage_nodes', 'total_bytes', 'bigint', (c) => c.notNull().defaultTo(0));
        await add('storage_nodes', 'free_bytes', 'bigint', (c) => c.notNull().defaultTo(0));
        await add('storage_nodes', 'last_seen', 'text', (c) => c.notNull().defaultTo(''));
        await db.schema.createIndex('storage_nodes_token').on('storage_nodes').column('node_token').unique().execute();
        await db.schema.createIndex('storage_nodes_name').on('storage_nodes').column('name').unique().execute();
        await add('volumes', 'block_size', 'integer', (c) => c.notNull().defaultTo(4194304));
        // SQLite drops a column only once no index names it.
        await db.schema.dropIndex('volumes_local_host').execute();
        await db.schema.alterTable('volumes').dropColumn('local_host').execute();
        await db.schema.createTable('volume_locations')
          .addColumn('volume_id', 'text', (c) => c.notNull().references('volumes.id'))
          .addColumn('node_id', 'text', (c) => c.notNull().references('storage_nodes.id'))
          .addColumn('added_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('volume_locations_pk', ['volume_id', 'node_id']).execute();
        await db.schema.createIndex('volume_locations_node').on('volume_locations').column('node_id').execute();
        await db.schema.createTable('volume_blocks')
          .addColumn('volume_id', 'text', (c) => c.notNull().references('volumes.id'))
          .addColumn('block', 'integer', (c) => c.notNull())
          .addColumn('object_id', 'text', (c) => c.notNull().unique())
          .addPrimaryKeyConstraint('volume_blocks_pk', ['volume_id', 'block']).execute();
        await db.schema.createTable('object_replicas')
          .addColumn('object_id', 'text', (c) => c.notNull())
          .addColumn('node_id', 'text', (c) => c.notNull().references('storage_nodes.id'))
          .addColumn('state', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('object_replicas_pk', ['object_id', 'node_id']).execute();
        await db.schema.createIndex('object_replicas_node').on('object_replicas').column('node_id').execute();
        await db.schema.createTable('volume_leases')
          .addColumn('volume_id', 'text', (c) => c.primaryKey().references('volumes.id'))
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('epoch', 'integer', (c) => c.notNull())
          .addColumn('expires_at', 'text', (c) => c.notNull()).execute();
        await db.schema.createTable('storage_garbage')
          .addColumn('node_id', 'text', (c) => c.notNull())
          .addColumn('object_id', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('storage_garbage_pk', ['node_id', 'object_id']).execute();
      },
    },
    '0005_sdn': {
      // P2 SDN topology (DESIGN.md §7, issue 5): edge switches per zone, each host wired to an edge
      // port through its uplink, each zone's SDN gateway, and the one gateway zone. VLAN rows
      // (network_zone_vlans) already exist; they now follow the networks' placed members.
      async up(db: Kysely<any>) {
        await db.schema.createTable('edges')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('zone_id', 'text', (c) => c.notNull().references('zones.id'))
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('uplink', 'text', (c) => c.notNull())
          .addColumn('mac_budget', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addUniqueConstraint('edges_zone_name', ['zone_id', 'name']).execute();
        // SQLite adds one column per statement.
        const add = (table: string, column: string, type: 'text' | 'integer', build: (c: any) => any = (c) => c) =>
          db.schema.alterTable(table).addColumn(column, type, build).execute();
        await add('hosts', 'edge_id', 'text', (c) => c.references('edges.id'));
        await add('hosts', 'edge_port', 'text');
        await add('hosts', 'uplink', 'text', (c) => c.notNull().defaultTo('eth0'));
        await add('zones', 'gateway_underlay_ip', 'text');
        await add('zones', 'gateway_downlink', 'text');
        await add('zones', 'gateway_zone', 'integer', (c) => c.notNull().defaultTo(0));
        // One host per edge port; NULLs (unwired hosts) never collide in either store.
        await db.schema.createIndex('hosts_edge_port').on('hosts').columns(['edge_id', 'edge_port']).unique().execute();
        // Flood lists name gateways by underlay address: two zones cannot share one.
        await db.schema.createIndex('zones_gateway_underlay_ip').on('zones').column('gateway_underlay_ip').unique().execute();
        // At most one gateway zone, held by the store even against two controllers racing.
        await db.schema.createIndex('zones_one_gateway_zone').on('zones').column('gateway_zone').unique().where('gateway_zone', '=', 1).execute();
      },
    },
    '0006_migration': {
      // Live migration (DESIGN.md §8, issue 6): while a VM moves, it holds capacity on its destination
      // too (migration_host_id), and a running request can be asked to roll back (cancel_requested),
      // which any controller sees, not only the one running it.
      async up(db: Kysely<any>) {
        await db.schema.alterTable('vms').addColumn('migration_host_id', 'text', (c) => c.references('hosts.id')).execute();
        await db.schema.alterTable('requests').addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      },
    },
    '0007_guest_config': {
      // Guest configuration by generations (issue 7): each init call adds one; the metadata service
      // serves their fold and the guest confirms the generation it applied. Both go with their VM
      // (cascade), so deallocateVm need not know of them.
      async up(db: Kysely<any>) {
        await db.schema.createTable('vm_config_generations')
          .addColumn('vm_id', 'text', (c) => c.notNull().references('vms.id').onDelete('cascade'))
          .addColumn('generation', 'integer', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('payload', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('request_id', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('vm_config_generations_pk', ['vm_id', 'generation']).execute();
        await db.schema.createTable('vm_config_current')
          .addColumn('vm_id', 'text', (c) => c.primaryKey().references('vms.id').onDelete('cascade'))
          .addColumn('generation', 'integer', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull()).execute();
      },
    },
    '0008_user_data': {
      // user-data (issue 7): the tenant's bytes, handed to the guest untouched at every boot (≤ 64 KiB).
      async up(db: Kysely<any>) {
        await db.schema.createTable('vm_user_data')
          .addColumn('vm_id', 'text', (c) => c.primaryKey().references('vms.id').onDelete('cascade'))
          .addColumn('data', 'text', (c) => c.notNull()).execute();
      },
    },
  };
}
