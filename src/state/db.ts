import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import Database from 'better-sqlite3';
import pg from 'pg';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Schema } from './schema.js';
import { migrations } from './migrations.js';

export type Dialect = 'sqlite' | 'postgres';
export type Tx = Transaction<Schema>;
export type Q = Kysely<Schema> | Tx;

export interface Db {
  k: Kysely<Schema>;
  dialect: Dialect;
  /** Serialises competing writers on one logical lock inside a transaction (PostgreSQL advisory
   * lock; SQLite already runs one writer at a time). Used for placement and quota checks. */
  lock(trx: Tx, name: string): Promise<void>;
  close(): Promise<void>;
  describe: string;
}

/** `url` is `postgres://…`, `sqlite:PATH`, or a plain file path (SQLite). */
export async function openDb(url: string): Promise<Db> {
  const db = url.startsWith('postgres://') || url.startsWith('postgresql://') ? openPostgres(url) : openSqlite(url.replace(/^sqlite:/, ''));
  await migrate(db);
  return db;
}

function openSqlite(path: string): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const raw = new Database(path);
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  raw.pragma('busy_timeout = 5000');
  raw.pragma('foreign_keys = ON');
  const k = new Kysely<Schema>({ dialect: new SqliteDialect({ database: raw }) });
  return { k, dialect: 'sqlite', lock: async () => {}, close: () => k.destroy(), describe: `sqlite:${path}` };
}

function openPostgres(url: string): Db {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // An idle connection the server ends (restart, failover, pg_terminate_backend) is reported on the
  // pool; unheard, that event would crash the controller. The pool drops the client and the next
  // query connects afresh, failing loudly if the server is really gone.
  pool.on('error', () => {});
  const k = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return {
    k, dialect: 'postgres',
    lock: async (trx, name) => { await sql`select pg_advisory_xact_lock(hashtext(${name}))`.execute(trx); },
    close: () => k.destroy(),
    describe: url.replace(/\/\/[^@/]*@/, '//***@'),
  };
}

async function migrate(db: Db): Promise<void> {
  const migrator = new Migrator({ db: db.k, provider: { getMigrations: async () => migrations(db.dialect) } });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? '?';
    throw new Error(`state store migration ${failed} failed on ${db.describe}: ${(error as Error).message ?? error}`);
  }
}

export const now = () => new Date().toISOString();
export const bool = (b: boolean) => (b ? 1 : 0);
