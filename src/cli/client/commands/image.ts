import { execFile } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { Option, type Command } from 'commander';
import { act, group } from '../command.js';
import { ApiError, CliError, type Connection } from '../connection.js';
import { text } from '../render.js';

const run = promisify(execFile);

/** Where `kumo up` and `kumo image build-tiny` keep downloaded guest packages: KUMO_CACHE, else
 * the OS temp dir (the same default as the guest image tests, so one warm cache serves both). */
export const defaultGuestCache = () => process.env.KUMO_CACHE || join(tmpdir(), 'kumo-guest-cache');

async function qemuImg(args: string[]): Promise<string> {
  try {
    return (await run('qemu-img', args, { maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new CliError('qemu-img not found: install the Debian package qemu-utils');
    throw new CliError(`qemu-img ${args[0]} failed: ${(err.stderr || err.message).trim().split('\n').slice(-2).join(' | ')}`);
  }
}

/** Streams a raw disk to PUT /v1/images/{name}/disk, gzip'd (zeros shrink to nothing), chunked. */
async function upload(conn: Connection, raw: string, name: string, q: Record<string, string | undefined>): Promise<unknown> {
  const url = new URL(`${conn.url}/v1/images/${encodeURIComponent(name)}/disk`);
  for (const [k, v] of Object.entries(q)) if (v !== undefined) url.searchParams.set(k, v);
  const authorization = conn.user === undefined ? `Bearer ${conn.key}` : `Basic ${Buffer.from(`${conn.user}:${conn.key}`).toString('base64')}`;
  const body = Readable.toWeb(createReadStream(raw, { highWaterMark: 1 << 20 }).pipe(createGzip({ level: 1 }))) as ReadableStream<Uint8Array>;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'PUT', body, duplex: 'half',
      headers: { authorization, 'content-type': 'application/octet-stream', 'content-encoding': 'gzip', accept: 'application/json' },
    } as RequestInit & { duplex: 'half' });
  } catch (e) {
    const err = e as Error & { cause?: Error };
    throw new CliError(`cannot upload to the controller at ${conn.url}: ${err.cause?.message ?? err.message}`);
  }
  const t = await res.text();
  let parsed: Record<string, unknown> = {};
  try { parsed = t ? JSON.parse(t) : {}; } catch { /* not JSON */ }
  if (res.ok) return parsed;
  const hint = res.status === 401 ? ` (credentials from ${conn.source})` : '';
  throw new ApiError(res.status, String(parsed.title ?? `HTTP ${res.status}`), parsed.code as number | undefined, String(parsed.detail ?? (t.slice(0, 200) || res.statusText)) + hint);
}

export function imageCommands(program: Command): void {
  const image = group(program, 'image', 'images: the storage archives a VM\'s system volume can be restored from');
  image.command('list').description('list the images you can use')
    .action(act(async (c) => c.print(await c.call('getImageList'))));
  image.command('show').description('show one image').argument('<image>', 'image id (img-…)')
    .action(act(async (c, [imageId]) => c.print(await c.call('getImageInfo', { imageId }))));

  image.command('import').description('upload a raw or qcow2 disk as an image that boots by firmware (admin; prints its id). '
    + 'The disk is converted to raw here with qemu-img and streamed to the controller; the same name again replaces it')
    .argument('<file>', 'disk image file (raw or qcow2)')
    .requiredOption('--name <name>', 'image name')
    .option('--os <os>', 'operating system, e.g. linux', 'unknown')
    .addOption(new Option('--format <format>', 'format of FILE (default: what qemu-img detects)').choices(['raw', 'qcow2']))
    .option('--tenant <tenant>', 'make it a private image of this tenant (tenant-…) instead of a public one')
    .action(act(async (c, [file], o) => {
      const path = resolve(file);
      if (!existsSync(path)) throw new CliError(`${file}: no such file`);
      // Refused before converting and uploading what may be many GiB.
      await c.call('getTenantList').catch((e) => {
        throw e instanceof ApiError && e.code === 2 ? new CliError(`importing images is for administrators (credentials from ${c.client.conn.source})`) : e;
      });
      const info = JSON.parse(await qemuImg(['info', '--output=json', ...(o.format ? ['-f', o.format] : []), path])) as { format: string; 'virtual-size': number };
      if (info.format !== 'raw' && info.format !== 'qcow2') throw new CliError(`${file} is ${info.format}; kumo imports raw and qcow2 images (qemu-img convert -O qcow2 first)`);
      const source = `kumo image import of ${basename(path)} (${info.format}, ${info['virtual-size']} bytes)`;
      let raw = path;
      let scratch: string | null = null;
      try {
        if (info.format !== 'raw') {
          scratch = await mkdtemp(join(tmpdir(), 'kumo-import-'));
          raw = join(scratch, 'disk.raw');
          if (!c.json) process.stderr.write(`converting ${basename(path)} (${info.format}) to raw …\n`);
          await qemuImg(['convert', '-f', info.format, '-O', 'raw', path, raw]);
        }
        if (!c.json) process.stderr.write(`uploading ${((await stat(raw)).size / 1048576).toFixed(1)} MiB (gzip'd) to ${c.client.conn.url} …\n`);
        const r = await upload(c.client.conn, raw, o.name, { os: o.os, source, tenantId: o.tenant }) as { imageId: string };
        c.print(c.json ? r : { imageId: r.imageId });
      } finally {
        if (scratch) await rm(scratch, { recursive: true, force: true });
      }
    }));

  // Both build on this machine and talk to no controller: no connection is needed.
  const build = (name: string, description: string, what: string, make: (cacheDir: string, outDir: string, log: (l: string) => void) => Promise<object>) =>
    image.command(name).description(description)
      .option('--out <dir>', 'directory for the image files', `./${what}`)
      .option('--cache <dir>', 'downloaded packages (and a finished disk), reused by later builds (default: KUMO_CACHE, else the OS temp dir)')
      .action(async (o: { out: string; cache?: string }, cmd: Command) => {
        const json = cmd.optsWithGlobals().output === 'json';
        try {
          const out = await make(resolve(o.cache ?? defaultGuestCache()), resolve(o.out), (l) => process.stderr.write(`${l}\n`));
          process.stdout.write(json ? `${JSON.stringify(out, null, 2)}\n` : text(out as Record<string, unknown>));
        } catch (e) {
          process.stderr.write(`kumo: building ${what} failed: ${(e as Error).message}\n`);
          process.exitCode = 1;
        }
      });
  build('build-tiny', 'build the tiny Linux guest (kernel, initramfs, ext4 disk) from Debian packages and print its files', 'tiny-linux',
    async (cacheDir, outDir, log) => {
      const { buildTinyImage } = await import('../../../guest/build-tiny.js');
      const r = await buildTinyImage({ cacheDir, outDir, log });
      return { disk: r.disk, kernel: r.kernel, vmlinux: r.vmlinux, initrd: r.initrd, manifest: r.manifest, kernelVersion: r.kernelVersion, sizeMiB: r.sizeMiB };
    });
  // The image boots by direct kernel boot (no bootloader), with the tiny image's kernel and initramfs.
  build('build-debian', 'build a minimal Debian 12 image with cloud-init (debootstrap, needs root and a Debian mirror; '
    + 'KUMO_DEBIAN_MIRROR overrides deb.debian.org) and print its files. The finished disk is cached, so a second run is a copy. '
    + 'Boot it with the printed kernel, initrd and cmdline; cloud-init reads the OpenStack metadata service. `kumo up --debian-image` also registers it',
  'debian-12-cloud', async (cacheDir, outDir, log) => {
    const { buildDebianImage } = await import('../../../guest/debian/build.js');
    const r = await buildDebianImage({ cacheDir, outDir, log });
    return { disk: r.disk, kernel: r.kernel, vmlinux: r.vmlinux, initrd: r.initrd, manifest: r.manifest, cmdline: r.cmdline, kernelVersion: r.kernelVersion, sizeMiB: r.sizeMiB, cached: r.cached };
  });
}
