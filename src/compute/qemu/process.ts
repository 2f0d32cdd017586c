/**
 * QEMU as an operating-system process: start it daemonized, read its pidfile, tell whether a pid
 * is still *this VM's* QEMU (pids are reused, so the pid alone proves nothing: its command line
 * must name this VM's pidfile), signal it, wait for it to be gone.
 *
 * The generic part (pidfiles, /proc, zombies) is core/proc.ts.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { alive, procCmdline, readPidfile } from '../../core/proc.js';

export { procCmdline, procState, readPidfile, signal } from '../../core/proc.js';

/** Whether `pid` is a living (not zombie) process started with `-pidfile <pidfile>`. */
export function isQemuFor(pid: number, pidfile: string): boolean {
  if (!alive(pid)) return false;
  const argv = procCmdline(pid);
  if (!argv) return false;
  const i = argv.indexOf('-pidfile');
  return i >= 0 && argv[i + 1] === pidfile;
}

/** The pid of the QEMU that owns this pidfile, if it runs. */
export function findQemu(pidfile: string): number | null {
  const pid = readPidfile(pidfile);
  return pid !== null && isQemuFor(pid, pidfile) ? pid : null;
}

/** Polls until the process is gone (or a zombie); false if it still runs after timeoutMs. */
export async function waitGone(pid: number, pidfile: string, timeoutMs: number, pollMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isQemuFor(pid, pidfile)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(pollMs);
  }
}

export class QemuStartError extends Error {
  constructor(message: string, readonly output: string) { super(message); this.name = 'QemuStartError'; }
}

async function readTail(path: string, max = 64 * 1024): Promise<string> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const size = (await fh.stat()).size;
    const start = Math.max(0, size - max);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

const lastLines = (text: string, n: number) => text.trim().split('\n').slice(-n).join('\n');

/**
 * Runs `qemu … -daemonize`: the command returns once QEMU has initialised (devices created, disks
 * opened, sockets listening) and its daemon runs on, detached from this process. Its stderr goes
 * to `stderrPath` (rewritten). QEMU started with `-D file` writes its own errors to that file (it
 * truncates it first), so a failed start throws with the last lines of both.
 */
export async function spawnDaemonized(binary: string, argv: string[], stderrPath: string, timeoutMs: number, alsoRead: string[] = []): Promise<void> {
  const fd = openSync(stderrPath, 'w');
  let code: number | null;
  let sig: NodeJS.Signals | null;
  try {
    const child = spawn(binary, argv, { stdio: ['ignore', fd, fd] });
    ({ code, sig } = await new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new QemuStartError(`${binary} did not finish starting within ${timeoutMs} ms`, ''));
      }, timeoutMs);
      child.once('error', (e) => { clearTimeout(timer); reject(new QemuStartError(`cannot run ${binary}: ${e.message}`, '')); });
      child.once('exit', (c, s) => { clearTimeout(timer); resolve({ code: c, sig: s }); });
    }));
  } finally {
    closeSync(fd);
  }
  if (code === 0) return;
  const output = (await Promise.all([stderrPath, ...alsoRead].map((p) => readTail(p)))).filter((t) => t.trim() !== '').join('\n');
  const how = code !== null ? `exit code ${code}` : `signal ${sig}`;
  throw new QemuStartError(`QEMU failed to start (${how}): ${lastLines(output, 8) || '(no output)'}`, output);
}
