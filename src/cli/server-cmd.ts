// Server code (fastify, the state store) is imported inside the actions so client commands start fast.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import type { Controller } from '../controller.js';
import { defaultGuestCache } from './client/commands/image.js';
import { int, onSignals } from './util.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

const controllerOptions = (c: Command) => c
  .option('--data <dir>', 'data directory (SQLite store, credentials.json, join-token, logs)', './data')
  .option('--listen <addr>', 'address the API listens on', '127.0.0.1')
  .option('--port <n>', 'API port (0 picks a free one)', int, 8780)
  .option('--name <name>', 'controller name, unique among controllers sharing a store', hostname())
  .option('--vm-types <file>', 'JSON array of VM types {type, vcpus, memoryMiB, systemDiskGiB, resourceType} to add to the catalog')
  .option('--overcommit-vcpu <ratio>', 'best-effort vCPU overcommit', Number, 4)
  .option('--overcommit-memory <ratio>', 'best-effort memory overcommit', Number, 1)
  .option('--graceful-stop-ms <ms>', 'powerOffVm: time an ACPI shutdown gets before the VM is forced off', int, 60_000)
  .option('--migration-bandwidth <bytes/s>', 'live migration: QEMU max-bandwidth per migration (default 1 GiB/s)', int)
  .option('--migration-timeout-ms <ms>', 'live migration: abandoned after this long, the VM running on at its source (default 10 min)', int)
  .option('--drain-concurrency <n>', 'drainHost: live migrations a drain runs at once', int, 2)
  .option('--guest-confirm-timeout-ms <ms>', 'init API (setSshKey …): how long a running guest has to confirm a change before the request fails (the change stays stored for its next boot)', int, 120_000)
  .option('--write-whitelist <file>', 'writeFile: JSON array of glob patterns guests may be written to (default: /etc/motd, /etc/hosts, /etc/kumo/**, /home/*/.ssh/authorized_keys)');

function controllerArgs(o: Record<string, any>, data: string) {
  return {
    db: o.db ?? `sqlite:${join(data, 'kumo.db')}`, dataDir: data, host: o.listen, port: o.port, name: o.name,
    overcommit: { vcpu: o.overcommitVcpu, memory: o.overcommitMemory }, vmTypesFile: o.vmTypes, gracefulStopMs: o.gracefulStopMs,
    migration: {
      ...(o.migrationBandwidth !== undefined ? { maxBandwidthBytes: o.migrationBandwidth } : {}),
      ...(o.migrationTimeoutMs !== undefined ? { completionTimeoutMs: o.migrationTimeoutMs } : {}),
    },
    drainConcurrency: o.drainConcurrency, guestConfirmTimeoutMs: o.guestConfirmTimeoutMs, writeWhitelistFile: o.writeWhitelist,
  };
}

export const TINY_IMAGE = 'tiny-linux';

/**
 * Builds the tiny guest (warm cache: a few seconds) and registers it as the public image
 * `tiny-linux`, booting its uncompressed kernel directly (3× faster under TCG than vmlinuz).
 * Registration is idempotent by name: the same files change nothing, new ones replace them.
 */
async function registerTinyImage(c: Controller, data: string, cacheDir: string, log: Logger): Promise<string> {
  const { buildTinyImage } = await import('../guest/build-tiny.js');
  const { SYSTEM } = await import('../services/principal.js');
  await mkdir(data, { recursive: true });
  const out = await mkdtemp(join(data, '.tiny-build-'));
  try {
    const b = await buildTinyImage({ cacheDir, outDir: out, log: (line) => log.info({ component: 'tiny-image' }, line) });
    const r = await c.services.images.register(SYSTEM, {
      name: TINY_IMAGE, os: 'linux', kind: 'tiny',
      source: `kumo image build-tiny: kernel ${b.kernelVersion}; ${b.packages.map((p) => `${p.name} ${p.version}`).join(', ')}`,
      disk: b.disk, files: [{ name: 'vmlinux', path: b.vmlinux }, { name: 'initrd.img', path: b.initrd }],
      boot: { kernel: 'vmlinux', initrd: 'initrd.img', append: 'console=ttyS0 quiet' },
    });
    log.info({ imageId: r.imageId, changed: r.changed }, 'tiny-linux image registered');
    return r.imageId;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** `kumo up --debian-image`: builds (minutes on a cold cache, seconds on a warm one) and registers debian-12-cloud. */
async function registerDebianImage(c: Controller, data: string, cacheDir: string, log: Logger): Promise<string> {
  const { buildDebianImage, registration } = await import('../guest/debian/build.js');
  const { SYSTEM } = await import('../services/principal.js');
  await mkdir(data, { recursive: true });
  const out = await mkdtemp(join(data, '.debian-build-'));
  try {
    const b = await buildDebianImage({ cacheDir, outDir: out, log: (line) => log.info({ component: 'debian-image' }, line) });
    const r = await c.services.images.register(SYSTEM, registration(b));
    log.info({ imageId: r.imageId, changed: r.changed }, 'debian-12-cloud image registered');
    return r.imageId;
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** Runs a `kumo` child process, restarting it when it dies, until stop() (SIGTERM, then its exit). */
function supervise(what: string, argv: string[]): { stop(): Promise<void> } {
  let child: ChildProcess;
  let stopping = false;
  const start = () => {
    child = spawn(process.execPath, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`kumo up: the ${what} exited (${signal ?? code}); restarting it\n`);
      setTimeout(start, 1000);
    });
  };
  start();
  return {
    async stop() {
      stopping = true;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

export function serverCommands(program: Command): void {
  controllerOptions(program.command('controller')
    .description('run a controller: API (/RPC2, /v1), state store, scheduler and request engine')
    .option('--db <url>', 'state store: postgres://… (several controllers) or sqlite:FILE (default DATA/kumo.db)')
    .option('--log <file>', 'log file (default: stderr)'))
    .action(async (o) => {
      const { bootstrapCredentials, startController } = await import('../controller.js');
      const { makeLogger } = await import('./log.js');
      const data = resolve(o.data);
      const c = await startController({ ...controllerArgs(o, data), log: makeLogger('controller', o.log) });
      const creds = await bootstrapCredentials(c, data);
      process.stdout.write(`kumo controller ${o.name}\n  XML-RPC:     ${c.url}/RPC2\n  REST:        ${c.url}/v1\n  join token:  ${join(data, 'join-token')}\n  credentials: ${creds ?? '(users exist already; this controller wrote none)'}\n`);
      onSignals(() => c.close());
    });

  controllerOptions(program.command('up')
    .description('run the all-in-one cloud on this machine: controller + agent with its storage node in-process, SQLite in DATA')
    .option('--driver <name>', 'compute driver of the agent: auto (QEMU when installed, else sim), qemu or sim', 'auto')
    .option('--sim-boot-ms <ms>', 'sim driver: simulated boot time', int, 2000)
    .option('--cache <dir>', 'downloaded Debian packages for the tiny-linux image (default: KUMO_CACHE, else the OS temp dir)')
    .option('--no-tiny-image', 'do not build and register the tiny-linux image')
    .option('--debian-image', 'also build and register debian-12-cloud, a Debian 12 image with cloud-init (debootstrap: about 3 min the first time, cached after; needs a Debian mirror); VMs of it need 512 MiB or more'))
    .action(async (o) => {
      const { bootstrapCredentials, startController } = await import('../controller.js');
      const { makeLogger } = await import('./log.js');
      const data = resolve(o.data);
      const logs = join(data, 'logs');
      const log = makeLogger('controller', join(logs, 'controller.log'));
      const c = await startController({ ...controllerArgs(o, data), log });
      const creds = await bootstrapCredentials(c, data);
      // Built while the agent starts; "kumo is up" waits for it, so the image is there when scripts go on.
      const tiny = o.tinyImage === false ? Promise.resolve(null) : registerTinyImage(c, data, resolve(o.cache ?? defaultGuestCache()), log).catch((e: Error) => {
        log.warn({ err: e.message }, 'no tiny-linux image');
        process.stderr.write(`kumo up: no ${TINY_IMAGE} image (building it failed: ${e.message.split('\n')[0].slice(0, 300)}); continuing without it\n`);
        return null;
      });
      // One hyperconverged host: the storage node runs inside the agent, whose volumes reach it
      // without a network hop (a separate process cost most of a local replica's speed). Its data
      // directory and name are those of the separate `kumo storage-node` earlier versions ran, so
      // an existing DATA keeps its node id.
      const children = [
        supervise('agent', [MAIN, 'agent', '--controller', c.url, '--zone', 'zone-1', '--join-token-file', join(data, 'join-token'),
          '--host', hostname(), '--listen', `${o.listen}:0`, '--data', join(data, 'agent'), '--driver', o.driver, '--sim-boot-ms', String(o.simBootMs),
          '--storage-data', join(data, 'storage'), '--storage-name', `${hostname()}-storage`, '--storage-listen', `${o.listen}:0`,
          '--log', join(logs, 'agent.log')]),
      ];
      const debian = o.debianImage ? registerDebianImage(c, data, resolve(o.cache ?? defaultGuestCache()), log).catch((e: Error) => {
        process.stderr.write(`kumo up: no debian-12-cloud image (building it failed: ${e.message.split('\n')[0].slice(0, 300)}); continuing without it\n`);
        return null;
      }) : Promise.resolve(null);
      const imageId = await tiny;
      const debianId = await debian;
      process.stdout.write([
        `kumo is up (data in ${data})`,
        `  XML-RPC:     ${c.url}/RPC2`,
        `  REST:        ${c.url}/v1   (OpenAPI: ${c.url}/v1/openapi.json, events: ws ${c.url.replace('http', 'ws')}/v1/events)`,
        `  credentials: ${creds}`,
        `  metrics:     ${c.url}/metrics`,
        `  logs:        ${logs}`,
        ...(imageId ? [`  image:       ${TINY_IMAGE} (${imageId}): ./kumo vm restore VM ${imageId}`] : []),
        ...(debianId ? [`  image:       debian-12-cloud (${debianId}): cloud-init; use a VM type with 512 MiB or more`] : []),
        `  try:         ./kumo vm create --type be.small && ./kumo vm list`,
        '',
      ].join('\n'));
      onSignals(async () => {
        await Promise.all(children.map((child) => child.stop()));
        await c.close();
      });
    });
}
