import { randomBytes, timingSafeEqual } from 'node:crypto';
import { Fault, KumoError, invalidParams, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Db, Q } from '../state/db.js';
import { now } from '../state/db.js';
import type { StorageNodeRow } from '../state/schema.js';
import type { NodeAddress } from '../storage/frontend/map.js';
import type { StorageHeartbeatBody, StorageRegisterBody } from '../storage/wire.js';
import type { Events } from './events.js';
import type { Hosts } from './hosts.js';
import { SYSTEM, requireAdmin, type Principal } from './principal.js';
import { checkName } from './validate.js';
import type { Zones } from './zones.js';

/** A storage node not heard from for this long is down: placement skips it, resync waits for it. */
export const NODE_DOWN_AFTER_MS = 30_000;

const sameSecret = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** A host name or IP address as a node reports it: no spaces, no URL parts. */
const HOST = /^[A-Za-z0-9.:_[\]-]{1,255}$/;

function checkAddress(b: { host: unknown; port: unknown; totalBytes: unknown; freeBytes: unknown }): void {
  if (typeof b.host !== 'string' || !HOST.test(b.host)) throw invalidParams('host must be a host name or IP address');
  if (!Number.isInteger(b.port) || (b.port as number) < 1 || (b.port as number) > 65535) throw invalidParams('port must be an integer 1–65535');
  for (const k of ['totalBytes', 'freeBytes'] as const) {
    if (!Number.isSafeInteger(b[k]) || (b[k] as number) < 0) throw invalidParams(`${k} must be a non-negative integer`);
  }
}

/** What a node reports of itself, as columns. */
const reported = (b: { host: string; port: number; totalBytes: number; freeBytes: number }, at: string) => ({
  host: b.host, port: b.port, total_bytes: b.totalBytes, free_bytes: b.freeBytes, status: 'up' as const, last_seen: at,
});

export const nodeAddress = (n: Pick<StorageNodeRow, 'id' | 'host' | 'port' | 'node_token'>, zone: string): NodeAddress =>
  ({ nodeId: n.id, zone, host: n.host, port: n.port, token: n.node_token ?? '' });

/**
 * Storage nodes (`kumo storage-node`): they register with the cluster's join token — the one agents
 * use — and get a node token, which they present on heartbeats and which frontends present on the
 * node's block protocol (so it is kept in plain text: it is an infrastructure credential).
 */
export class StorageNodes {
  constructor(private readonly db: Db, private readonly events: Events, private readonly zones: Zones, private readonly hosts: Hosts) {}

  /** Registers a node, or re-registers it by name: it keeps its id and token, its address and zone follow what it says now. */
  async register(joinToken: string, b: StorageRegisterBody): Promise<{ nodeId: string; nodeToken: string }> {
    if (typeof joinToken !== 'string' || !sameSecret(joinToken, await this.hosts.joinToken())) throw new KumoError(Fault.AUTHORIZATION, 'wrong join token');
    if (typeof b !== 'object' || b === null) throw invalidParams('a registration is a JSON object');
    if (typeof b.name !== 'string' || typeof b.zone !== 'string') throw invalidParams('name and zone must be strings');
    checkName(b.name, 'storage node name');
    checkAddress(b);
    const at = now();
    const out = await this.db.k.transaction().execute(async (trx) => {
      await this.db.lock(trx, `storage-node:${b.name}`);
      const zone = await this.zones.ensure(trx, b.zone);
      const old = await trx.selectFrom('storage_nodes').select(['id', 'node_token']).where('name', '=', b.name).executeTakeFirst();
      if (old?.node_token) {
        await trx.updateTable('storage_nodes').set({ zone_id: zone.id, ...reported(b, at) }).where('id', '=', old.id).execute();
        return { nodeId: old.id, nodeToken: old.node_token };
      }
      const nodeToken = randomBytes(24).toString('base64url');
      if (old) {
        await trx.updateTable('storage_nodes').set({ zone_id: zone.id, node_token: nodeToken, ...reported(b, at) }).where('id', '=', old.id).execute();
        return { nodeId: old.id, nodeToken };
      }
      const nodeId = newId('node');
      await trx.insertInto('storage_nodes').values({ id: nodeId, zone_id: zone.id, name: b.name, node_token: nodeToken, created_at: at, ...reported(b, at) }).execute();
      return { nodeId, nodeToken };
    });
    await this.events.publish(this.db.k, null, 'storage-node.registered', out.nodeId, { name: b.name, zone: b.zone, address: `${b.host}:${b.port}` });
    return out;
  }

  /** A node's periodic report; an unknown token (or one of another node) is AUTHORIZATION: register again. */
  async heartbeat(nodeToken: string, b: StorageHeartbeatBody): Promise<StorageNodeRow> {
    const n = nodeToken ? await this.db.k.selectFrom('storage_nodes').selectAll().where('node_token', '=', nodeToken).executeTakeFirst() : undefined;
    if (!n || !sameSecret(nodeToken, n.node_token ?? '')) throw new KumoError(Fault.AUTHORIZATION, 'unknown node token; register again');
    if (typeof b !== 'object' || b === null) throw invalidParams('a heartbeat is a JSON object');
    if (b.nodeId !== n.id) throw new KumoError(Fault.AUTHORIZATION, `this node token is not ${String(b.nodeId).slice(0, 64)}'s`);
    checkAddress(b);
    const set = reported(b, now());
    await this.db.k.updateTable('storage_nodes').set(set).where('id', '=', n.id).execute();
    return { ...n, ...set };
  }

  /** Marks nodes that went quiet as down; returns their ids so callers can log it. */
  async markSilentDown(ms = NODE_DOWN_AFTER_MS): Promise<string[]> {
    const cutoff = new Date(Date.now() - ms).toISOString();
    const silent = await this.db.k.selectFrom('storage_nodes').select('id').where('status', '=', 'up').where('last_seen', '<', cutoff).execute();
    if (silent.length === 0) return [];
    const ids = silent.map((n) => n.id);
    await this.db.k.updateTable('storage_nodes').set({ status: 'down' }).where('id', 'in', ids).where('last_seen', '<', cutoff).execute();
    for (const id of ids) await this.events.publish(this.db.k, null, 'storage-node.down', id, {});
    return ids;
  }

  /** getStorageNodeList (and the controller's own housekeeping, as SYSTEM). Byte counts pass 2^31:
   * XML-RPC carries them as <i8>, which Python's client reads. */
  async list(p: Principal = SYSTEM) {
    requireAdmin(p);
    const rows = await this.db.k.selectFrom('storage_nodes').innerJoin('zones', 'zones.id', 'storage_nodes.zone_id')
      .selectAll('storage_nodes').select('zones.name as zone').orderBy('storage_nodes.name').execute();
    return rows.map((n) => ({
      nodeId: n.id, name: n.name, zone: n.zone, status: n.status, address: n.host ? `${n.host}:${n.port}` : '',
      totalBytes: Number(n.total_bytes), freeBytes: Number(n.free_bytes), lastSeen: n.last_seen,
    }));
  }

  async row(q: Q, nodeId: string): Promise<StorageNodeRow> {
    const n = await q.selectFrom('storage_nodes').selectAll().where('id', '=', nodeId).executeTakeFirst();
    if (!n) throw notFound('storage node', nodeId);
    return n;
  }

  /** How frontends reach a node. */
  async address(nodeId: string, q: Q = this.db.k): Promise<NodeAddress> {
    const n = await this.row(q, nodeId);
    return nodeAddress(n, await this.zones.name(q, n.zone_id));
  }
}
