import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface PgCluster { url: string; port: number; dir: string; stop(): Promise<void> }

const MISSING = 'PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "postgresql" (apt-get install postgresql)';

/** Newest /usr/lib/postgresql/N/bin first (Debian keeps server binaries off PATH), then PATH. */
export function pgBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  const dirs = [...versions.map((v) => join(root, v, 'bin')), ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)];
  const dir = dirs.find((d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl')));
  if (!dir) throw new Error(MISSING);
  return dir;
}

/** initdb refuses to run as root; Debian's postgresql package creates the `postgres` user for this. */
function asPostgres(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root needs the "postgres" user to own the test cluster: install the Debian package "postgresql"');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

const command = (user: boolean, bin: string, args: string[]): [string, string[]] =>
  user ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

async function exec(user: boolean, bin: string, args: string[]): Promise<void> {
  const [file, argv] = command(user, bin, args);
  try {
    await run(file, argv, { timeout: 60_000 });
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string };
    throw new Error(`${[file, ...argv].join(' ')} failed: ${(err.stderr || err.stdout || err.message).trim()}`);
  }
}

/** A throwaway cluster in a temp dir on a random 127.0.0.1 port; stop() removes every trace of it. */
export async function startPostgres(): Promise<PgCluster> {
  const bin = pgBinDir();
  const owner = asPostgres();
  const dir = mkdtempSync(join(tmpdir(), 'kumo-pg-'));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const data = join(dir, 'data');
  const asUser = owner !== null;
  const pgCtl = join(bin, 'pg_ctl');
  let started = false;
  const stopSync = () => {
    if (started) {
      const [file, argv] = command(asUser, pgCtl, ['stop', '-D', data, '-m', 'immediate', '-w']);
      try { execFileSync(file, argv, { stdio: 'ignore', timeout: 30_000 }); } catch { /* already gone */ }
      started = false;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // A test process that dies between start and stop must not leave a postmaster behind.
  process.once('exit', stopSync);
  try {
    await exec(asUser, join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'kumo', '--no-sync', '-E', 'UTF8', '--locale=C']);
    let port = 0;
    // The free port may be taken between the probe and the bind: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const opts = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300`;
      try {
        await exec(asUser, pgCtl, ['start', '-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', opts]);
        started = true;
        break;
      } catch (e) {
        const log = existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8').slice(-2000) : '';
        if (attempt >= 3 || !/address already in use|could not bind/i.test(log)) throw new Error(`${(e as Error).message}\n${log}`);
      }
    }
    return {
      url: `postgres://kumo@127.0.0.1:${port}/postgres`, port, dir,
      async stop() {
        process.removeListener('exit', stopSync);
        if (started) {
          await exec(asUser, pgCtl, ['stop', '-D', data, '-m', 'immediate', '-w']).catch(() => {});
          started = false;
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    process.removeListener('exit', stopSync);
    stopSync();
    throw e;
  }
}

/** A fresh database per test suite, so suites sharing one cluster never see each other's rows. */
export async function createDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `kumo_test_${randomBytes(6).toString('hex')}`;
  const admin = async (stmt: string) => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    try { await c.query(stmt); } finally { await c.end(); }
  };
  await admin(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) };
}
