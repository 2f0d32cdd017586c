import { after, before, describe } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { makePolicy } from '../../src/scheduler/index.js';
import { Services } from '../../src/services/index.js';
import type { Principal } from '../../src/services/principal.js';
import type { Quota } from '../../src/services/quota.js';
import { FINISHED } from '../../src/services/requests.js';
import { openDb, type Db, type Dialect } from '../../src/state/db.js';
import { createDatabase, startPostgres, type PgCluster } from './postgres.js';

export const silent = pino({ level: 'silent' });

/** What a suite gets; `db`, `services` and `url` are there from its `before` hook on. */
export interface DbEnv {
  readonly dialect: Dialect;
  readonly db: Db;
  readonly services: Services;
  /** Opens the same store again, as a second controller would. */
  readonly url: string;
}

export const BACKENDS: Dialect[] = ['sqlite', 'postgres'];

// Run by hand (no KUMO_TEST_PG from test/run.ts), a file starts its own cluster once and stops it
// after its last postgres suite; suites are counted when they register, before any of them runs.
let own: Promise<PgCluster> | null = null;
let ownUsers = 0;

function adminUrl(): Promise<string> {
  const url = process.env.KUMO_TEST_PG;
  if (url) return Promise.resolve(url);
  own ??= startPostgres();
  return own.then((c) => c.url);
}

async function releaseOwn(): Promise<void> {
  if (--ownUsers === 0 && own) { const c = await own; own = null; await c.stop(); }
}

async function open(dialect: Dialect): Promise<{ url: string; cleanup(): Promise<void> }> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'kumo-sqlite-'));
    return { url: join(dir, 'kumo.db'), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const d = await createDatabase(await adminUrl());
  return { url: d.url, cleanup: () => d.drop() };
}

/** Registers `describe(name [backend])` for SQLite and PostgreSQL with a fresh, migrated store each. */
export function forEachDb(name: string, fn: (env: DbEnv) => void, backends: Dialect[] = BACKENDS): void {
  for (const dialect of backends) {
    if (dialect === 'postgres' && !process.env.KUMO_TEST_PG) ownUsers++;
    describe(`${name} [${dialect}]`, () => {
      const state: { db?: Db; services?: Services; url?: string; cleanup?: () => Promise<void> } = {};
      const need = <T>(v: T | undefined): T => {
        if (v === undefined) throw new Error('the store is opened in before(); use env inside tests and hooks');
        return v;
      };
      const env: DbEnv = {
        dialect,
        get db() { return need(state.db); },
        get services() { return need(state.services); },
        get url() { return need(state.url); },
      };
      before(async () => {
        const o = await open(dialect);
        state.url = o.url;
        state.cleanup = o.cleanup;
        state.db = await openDb(o.url);
        state.services = new Services(state.db, makePolicy(), silent);
        await state.services.vmTypes.seedDefaults();
      });
      after(async () => {
        state.services?.events.stop();
        await state.db?.close();
        await state.cleanup?.();
        if (dialect === 'postgres' && !process.env.KUMO_TEST_PG) await releaseOwn();
      });
      fn(env);
    });
  }
}

/** A tenant and a user of it, as the API would authenticate them. */
export async function newTenant(s: Services, name: string, quota: Partial<Quota> = {}, admin = false): Promise<Principal> {
  const tenantId = await s.tenants.createTenant({ userId: 'test', userName: 'test', tenantId: 'none', admin: true }, { name, quota });
  return { userId: `user-${name}`, userName: name, tenantId, admin };
}

/** Polls `f` until it returns something truthy. */
export async function until<T>(what: string, f: () => Promise<T | undefined | null | false>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Waits until every request in `ids` has ended (succeeded, failed or cancelled). */
export const requestsEnded = (db: Db, ids: string[]) => until(`${ids.length} requests to end`, async () => {
  const rows = await db.k.selectFrom('requests').select(['id', 'status']).where('id', 'in', ids).execute();
  return rows.length === ids.length && rows.every((r) => FINISHED.has(r.status)) && rows;
});
