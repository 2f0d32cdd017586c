/**
 * Runs debootstrap. It needs root (it chroots to run maintainer scripts) and a reachable mirror;
 * its downloaded .debs are kept in a cache directory so a rebuild after a configuration change
 * does not download again. Its chatter (hundreds of `I:` lines) is reduced to one line per phase.
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';

export interface DebootstrapOptions {
  suite: string;
  mirror: string;
  variant: string;
  include: string[];
  target: string;
  /** .deb cache, kept between builds */
  debCache: string;
  log: (line: string) => void;
}

/** Thrown when the mirror cannot be reached: the one case a test may skip on. */
export class MirrorUnreachable extends Error {}

export async function debootstrap(o: DebootstrapOptions): Promise<void> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('debootstrap needs root (it chroots into the new system to configure packages)');
  }
  await mkdir(o.debCache, { recursive: true });
  const args = [`--variant=${o.variant}`, `--include=${o.include.join(',')}`, `--cache-dir=${o.debCache}`, o.suite, o.target, o.mirror];
  o.log(`debootstrap ${args.join(' ')}`);
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin`, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' };
  const child = spawn('debootstrap', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let tail: string[] = [];
  const phases = new Set<string>();
  let count = 0;
  let last = '';
  // Each package passes through Retrieving/Validating/Extracting/Unpacking/Configuring: the first
  // line of each phase is logged, then the latest line every 30 s.
  const onLine = (line: string) => {
    tail = [...tail.slice(-19), line];
    const m = /^[IW]: (\S+)/.exec(line);
    if (!m) return;
    count++;
    last = line.slice(3);
    if (!phases.has(m[1]) || line.startsWith('W:')) {
      phases.add(m[1]);
      o.log(`debootstrap: ${last}`);
    }
  };
  const ticker = setInterval(() => o.log(`debootstrap: … ${count} steps, now: ${last}`), 30_000);
  for (const s of [child.stdout, child.stderr]) {
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
  }
  const code = await new Promise<number | string>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new Error('debootstrap not found: install the Debian package debootstrap') : e));
    child.on('exit', (c, sig) => resolve(c ?? sig ?? -1));
  }).finally(() => clearInterval(ticker));
  if (code !== 0) {
    const text = tail.join(' | ');
    const unreachable = /Failed getting release file|Couldn't download|Temporary failure resolving|Could not resolve|Connection refused|Network is unreachable/i.test(text);
    const msg = `debootstrap failed (${code}) after ${count} steps: ${text}`;
    throw unreachable ? new MirrorUnreachable(`cannot reach the Debian mirror ${o.mirror}: ${msg}`) : new Error(msg);
  }
}
