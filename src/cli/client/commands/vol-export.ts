/**
 * `kumo vol export VOL`: a volume frontend inside the CLI process, for operators' tools (qemu-img
 * convert/compare, backups). It takes the volume's write lease like an agent does — so a volume a
 * running VM holds is refused, and nothing else writes while the export runs — and serves the
 * volume over NBD until SIGINT/SIGTERM, then flushes, gives the lease back and exits 0.
 *
 * The export has no authentication of its own: by default it listens on a unix socket in a fresh
 * 0700 directory under $TMPDIR, reachable by this user only; --tcp is for loopback use.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { hostPort } from '../../util.js';
import { act } from '../command.js';
import { CliError, type Connection } from '../connection.js';

export function exportCommand(vol: Command): void {
  vol.command('export').description('serve a volume no running VM holds over NBD for qemu-img & co.; prints its NBD URI, serves until Ctrl-C')
    .argument('<vol>', 'volume id')
    .option('--tcp <host:port>', 'listen on TCP, e.g. 127.0.0.1:10809 (port 0 picks one); the export has no password, keep it on loopback', hostPort)
    .option('--socket <path>', 'listen on this unix socket (default: a new one in a private directory under $TMPDIR)')
    .addHelpText('after', `
The first line on stdout is the NBD URI, e.g.
  nbd+unix:///vol-1a2b?socket=/tmp/kumo-export-x/nbd.sock    or    nbd://127.0.0.1:10809/vol-1a2b
  qemu-img convert -p -O raw "$URI" backup.raw
The export holds the volume's write lease; Ctrl-C (or SIGTERM) flushes, gives it back and exits 0.`)
    .action(act(async (c, [volumeId], o) => {
      if (o.tcp && o.socket) throw new CliError('choose --tcp or --socket, not both', 2);
      await serve(c.client.conn, volumeId, o.tcp ?? null, o.socket ?? null);
    }));
}

async function serve(conn: Connection, volumeId: string, tcp: { host: string; port: number } | null, socket: string | null): Promise<void> {
  // Imported here: client commands that do not export start without the frontend's code.
  const [{ HttpMapSource }, { NodePool }, { VolumeSession }, { LeaseHeld }, { NbdServer }, { default: pino }] = await Promise.all([
    import('../../../storage/frontend/http-map.js'), import('../../../storage/frontend/pool.js'), import('../../../storage/frontend/session.js'),
    import('../../../storage/frontend/map.js'), import('../../../storage/nbd/index.js'), import('pino'),
  ]);
  // Warnings only by default: stdout is for the URI, stderr for what an operator must read.
  const log = pino({ name: 'vol-export', level: process.env.KUMO_LOG_LEVEL ?? 'warn', base: { pid: process.pid } }, pino.destination(2));
  const map = new HttpMapSource({
    controllerUrl: conn.url, holder: `export:${randomBytes(6).toString('hex')}`,
    auth: conn.user === undefined ? { bearer: conn.key } : { basic: { user: conn.user, key: conn.key } },
  });
  const pool = new NodePool({ client: `kumo vol export ${volumeId}`, log });
  let session: Awaited<ReturnType<typeof VolumeSession.open>>;
  try {
    session = await VolumeSession.open({ map, volumeId, pool, log });
  } catch (e) {
    await pool.close();
    if (e instanceof LeaseHeld) throw new CliError(`${volumeId} is in use by ${e.holder} (a running VM or another export holds its write lease); stop that first`);
    throw e;
  }
  const nbd = new NbdServer({ logger: log });
  const dir = tcp || socket ? null : await mkdtemp(join(tmpdir(), 'kumo-export-'));
  let uri: string;
  try {
    nbd.addExport(volumeId, session);
    const at = await nbd.listen(tcp ?? { path: socket ?? join(dir!, 'nbd.sock') });
    uri = 'path' in at
      ? `nbd+unix:///${encodeURIComponent(volumeId)}?socket=${at.path}`
      : `nbd://${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}/${encodeURIComponent(volumeId)}`;
  } catch (e) {
    await nbd.close();
    await session.close().catch(() => {});
    await pool.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    throw e;
  }
  process.stdout.write(`${uri}\n`);
  process.stderr.write(`kumo: exporting ${volumeId}; Ctrl-C flushes it, gives its write lease back and ends the export\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    let code = 0;
    // Clients first (they get the answers to what they have in flight), then the flush and the lease.
    await nbd.close();
    try { await session.close(); } catch (e) {
      code = 1;
      process.stderr.write(`kumo: closing ${volumeId} failed (its lease lapses by itself): ${(e as Error).message}\n`);
    }
    await pool.close().catch(() => {});
    if (dir) await rm(dir, { recursive: true, force: true });
    process.exit(code);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}
