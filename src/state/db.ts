import {
  Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Compilable, type CompiledQuery, type SqliteDatabase, type Transaction,
} from 'kysely';
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
  const k = new Kysely<Schema>({ dialect: new SqliteDialect({ database: new StatementCache(raw) }) });
  return { k, dialect: 'sqlite', lock: async () => {}, close: () => k.destroy(), describe: `sqlite:${path}` };
}

/** Most statements kept prepared; enough for every distinct query kumo makes, `in (…)` lists aside. */
export const STATEMENT_CACHE_SIZE = 1000;

/**
 * better-sqlite3 as Kysely's SqliteDialect sees it, with prepared statements kept for reuse.
 * The dialect calls `prepare(sql)` for every query it runs, and compiling the SQL cost more than
 * running it (a primary-key select: 35 µs, 10–14 µs with the statement kept). A better-sqlite3
 * Statement can be run any number of times; the dialect only reads `reader` and calls `all`, `run`
 * or `iterate` with the parameters of each query, so handing it the same Statement again for the
 * same SQL text behaves as a fresh one would. The dialect runs one query at a time on its single
 * connection; a statement still in use by an unfinished `iterate` (`busy`) is not handed out
 * again: that caller gets a fresh one instead. The least recently used statement goes when
 * `size` are kept.
 */
export class StatementCache implements SqliteDatabase {
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(private readonly raw: Database.Database, private readonly size = STATEMENT_CACHE_SIZE) {}

  prepare(sqlText: string): Database.Statement {
    const kept = this.stmts.get(sqlText);
    if (kept !== undefined) {
      // A Map iterates in insertion order: re-inserting makes this the most recently used.
      this.stmts.delete(sqlText);
      this.stmts.set(sqlText, kept);
      return kept.busy ? this.raw.prepare(sqlText) : kept;
    }
    const fresh = this.raw.prepare(sqlText);
    if (this.stmts.size >= this.size) this.stmts.delete(this.stmts.keys().next().value!);
    this.stmts.set(sqlText, fresh);
    return fresh;
  }

  /** Statements kept now (for tests). */
  get cached(): number {
    return this.stmts.size;
  }

  close(): void {
    this.stmts.clear();
    this.raw.close();
  }
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

/**
 * A query built and compiled once per dialect, then run with new argument values. Kysely builds and
 * compiles a query anew each time it runs one, and for a small query that costs more than SQLite
 * takes to run it (getVmInfo's four-table join: 50 µs to build and 30 to compile, 19 to run).
 *
 * `build` receives a placeholder string for each argument and must use each only as a whole
 * parameter value (`where('id', '=', id)`), never inside SQL text or a computed value; `execute`
 * puts the arguments where the placeholders are among the compiled parameters. The SQL depends
 * only on the dialect (kumo's Kysely instances have no plugins), so one compilation per dialect
 * serves every store and transaction of it.
 */
export class Precompiled<A extends string[], R> {
  private readonly compiled = new Map<Dialect, { query: CompiledQuery<R>; slots: number[] }>();

  constructor(private readonly build: (k: Kysely<Schema>, ...args: A) => Compilable<R>) {}

  /** All rows, run on `q`: `db` itself or a transaction of it. */
  async execute(db: Db, q: Q, ...args: A): Promise<R[]> {
    let c = this.compiled.get(db.dialect);
    if (c === undefined) {
      const marks = args.map((_, i) => `\u0000precompiled argument ${i}\u0000`) as A;
      const query = this.build(db.k, ...marks).compile();
      // For each compiled parameter, the argument it takes (-1: a constant of the query itself).
      const slots = query.parameters.map((v) => marks.indexOf(v as string));
      for (let i = 0; i < marks.length; i++) if (!slots.includes(i)) throw new Error(`precompiled query does not use argument ${i} as a parameter`);
      this.compiled.set(db.dialect, c = { query, slots });
    }
    const { query, slots } = c;
    const parameters = slots.map((s, i) => (s < 0 ? query.parameters[i] : args[s]));
    return (await q.executeQuery<R>({ ...query, parameters })).rows;
  }

  /** The first row, or undefined. */
  async first(db: Db, q: Q, ...args: A): Promise<R | undefined> {
    return (await this.execute(db, q, ...args))[0];
  }
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
