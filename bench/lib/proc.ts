/** Child processes of the benches: started, watched and stopped by pid, never by name. */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const children = new Set<ChildProcess>();

/** Remembers a child so that stopAll() (also run on SIGINT/SIGTERM and on a crash) stops it. */
export function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
export function stop(c: ChildProcess, graceMs = 10_000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) { children.delete(c); return Promise.resolve(); }
  return new Promise((resolve) => {
    const timer = setTimeout(() => { if (c.pid) try { process.kill(c.pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
    c.once('exit', () => { clearTimeout(timer); children.delete(c); resolve(); });
    if (c.pid) try { process.kill(c.pid, 'SIGTERM'); } catch { /* gone */ }
  });
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c)));
}

let installed = false, stopping = false;
/** True once a signal asked the bench to stop: children exiting then are expected, not failures. */
export const isStopping = () => stopping;

/** On SIGINT/SIGTERM: stop every tracked child, then exit. */
export function stopChildrenOnSignals(cleanup: () => void = () => {}): void {
  if (installed) return;
  installed = true;
  const h = (sig: NodeJS.Signals) => {
    stopping = true;
    void stopAll().finally(() => { cleanup(); process.stderr.write(`bench: stopped by ${sig}\n`); process.exit(130); });
  };
  process.once('SIGINT', h);
  process.once('SIGTERM', h);
}

/** Resolves with the first match of `re` on the child's stdout (line by line); rejects when it exits first or `timeoutMs` passes. */
export function waitForLine(c: ChildProcess, re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('utf8');
      const m = re.exec(buf);
      if (m) { cleanup(); resolve(m); }
    };
    const onExit = (code: number | null, sig: string | null) => { cleanup(); reject(new Error(`${what} exited (${sig ?? code}) before printing ${re}; stdout so far: ${buf.slice(0, 500)}`)); };
    const timer = setTimeout(() => { cleanup(); reject(new Error(`${what} did not print ${re} within ${timeoutMs} ms`)); }, timeoutMs);
    const cleanup = () => { clearTimeout(timer); c.stdout!.off('data', onData); c.off('exit', onExit); };
    c.stdout!.on('data', onData);
    c.once('exit', onExit);
  });
}

let clockTicks = 0;
/** CPU seconds (user + system) a process has used so far, from /proc; null where there is no /proc. */
export function cpuSeconds(pid: number): number | null {
  try {
    if (!clockTicks) clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / clockTicks; // utime, stime (fields 14 and 15)
  } catch {
    return null;
  }
}
