import { createHash, randomBytes } from 'node:crypto';
import { Fault, KumoError, invalidParams, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import type { Db } from '../state/db.js';
import { now, bool } from '../state/db.js';
import { requireAdmin, type Principal } from './principal.js';
import { DEFAULT_QUOTA, usage, type Quota } from './quota.js';
import { checkName } from './validate.js';

/** API keys are 32 random bytes, so a plain SHA-256 is enough to store them (no dictionary to
 * attack) and cheap enough to check on every call of a 5,000 req/s API. */
const hashKey = (key: string) => createHash('sha256').update(key).digest('hex');

const AUTH_CACHE_MS = 5000;
const AUTH_CACHE_ENTRIES = 10000;

export interface ApiCredentials { user: string; key: string }

type AuthCache = Map<string, { p: Principal | null; until: number }>;

function remember(cache: AuthCache, key: string, p: Principal | null): Principal | null {
  if (cache.size > AUTH_CACHE_ENTRIES) cache.clear();
  cache.set(key, { p, until: Date.now() + AUTH_CACHE_MS });
  return p;
}

export class Tenants {
  private readonly cache: AuthCache = new Map();
  private readonly presentedCache: AuthCache = new Map();

  constructor(private readonly db: Db) {}

  async createTenant(p: Principal, args: { name: string; quota?: Partial<Quota> }): Promise<string> {
    requireAdmin(p);
    checkName(args.name);
    const quota = { ...DEFAULT_QUOTA, ...(args.quota ?? {}) };
    for (const [k, v] of Object.entries(quota)) if (!Number.isInteger(v) || v < 0) throw invalidParams(`quota.${k} must be a non-negative integer`);
    const exists = await this.db.k.selectFrom('tenants').select('id').where('name', '=', args.name).executeTakeFirst();
    if (exists) throw new KumoError(Fault.CONFLICT, `a tenant named ${args.name} exists (${exists.id})`);
    const id = newId('tenant');
    await this.db.k.insertInto('tenants').values({ id, name: args.name, quota: JSON.stringify(quota), created_at: now() }).execute();
    return id;
  }

  async createApiUser(p: Principal, tenantId: string, opts: { admin?: boolean; name?: string } = {}): Promise<ApiCredentials> {
    requireAdmin(p);
    const t = await this.db.k.selectFrom('tenants').select(['id', 'name']).where('id', '=', tenantId).executeTakeFirst();
    if (!t) throw notFound('tenant', tenantId);
    const user = opts.name ?? `${t.name}-${randomBytes(3).toString('hex')}`;
    checkName(user);
    const key = randomBytes(32).toString('base64url');
    await this.db.k.insertInto('api_users').values({
      id: newId('user'), name: user, tenant_id: tenantId, key_hash: hashKey(key), admin: bool(!!opts.admin), created_at: now(),
    }).execute();
    return { user, key };
  }

  async listTenants(p: Principal) {
    requireAdmin(p);
    const rows = await this.db.k.selectFrom('tenants').selectAll().orderBy('name').execute();
    return Promise.all(rows.map(async (t) => ({ tenantId: t.id, name: t.name, quota: JSON.parse(t.quota) as Quota, usage: await usage(this.db.k, t.id) })));
  }

  async getQuota(p: Principal) {
    const t = await this.db.k.selectFrom('tenants').select('quota').where('id', '=', p.tenantId).executeTakeFirst();
    if (!t) throw notFound('tenant', p.tenantId);
    return { quota: { ...DEFAULT_QUOTA, ...JSON.parse(t.quota) } as Quota, usage: await usage(this.db.k, p.tenantId) };
  }

  /** `user` may be omitted for bearer tokens: the key alone identifies its user. */
  async authenticate(user: string | null, key: string): Promise<Principal | null> {
    const h = hashKey(key);
    const cacheKey = `${user ?? ''}\0${h}`;
    const hit = this.cache.get(cacheKey);
    if (hit && hit.until > Date.now()) return hit.p;
    return remember(this.cache, cacheKey, await this.lookup(user, h));
  }

  /**
   * The same check for credentials as a client sends them (an HTTP Authorization header), cached by
   * that exact text: a hit decodes and hashes nothing. `credentials` extracts user and key from
   * `presented` on a miss; null (malformed) authenticates no one. Same lifetime and bound as
   * authenticate's cache.
   */
  async authenticatePresented(presented: string, credentials: (presented: string) => { user: string | null; key: string } | null): Promise<Principal | null> {
    const hit = this.presentedCache.get(presented);
    if (hit && hit.until > Date.now()) return hit.p;
    const c = credentials(presented);
    return remember(this.presentedCache, presented, c ? await this.lookup(c.user, hashKey(c.key)) : null);
  }

  private async lookup(user: string | null, keyHash: string): Promise<Principal | null> {
    const row = await this.db.k.selectFrom('api_users').selectAll().where('key_hash', '=', keyHash).executeTakeFirst();
    return row && (user === null || row.name === user)
      ? { userId: row.id, userName: row.name, tenantId: row.tenant_id, admin: row.admin === 1 } : null;
  }
}
