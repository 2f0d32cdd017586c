/**
 * Test helper: boot the tiny guest under QEMU (TCG) with its serial console in a file and a QMP
 * socket, wait for console lines, send QMP commands written by hand (the real QMP client lives in
 * src/compute and is not a dependency of these tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';

export interface TinyVmOptions {
  kernel: string;
  initrd: string;
  disk: string;
  /** scratch directory for the console log and the QMP socket */
  dir: string;
  name: string;
  append?: string;
  /** SMBIOS type 1 serial (the VM id); omitted when undefined */
  serial?: string;
  memMiB?: number;
  /** more QEMU arguments (NICs, …) */
  extraArgs?: string[];
}

export interface TinyVm {
  proc: ChildProcess;
  consoleLog: string;
  qmpSocket: string;
  /** resolves with the exit code (or signal name) once QEMU has exited */
  exited: Promise<number | string>;
  /** the console so far, as lines without \r */
  lines(): string[];
  /** waits until a console line matches `re` */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string>;
  /** runs QMP commands after qmp_capabilities; resolves with each command's response */
  qmp(commands: object[], timeoutMs?: number): Promise<unknown[]>;
  kill(): void;
}

export const TCG_ARGS = ['-accel', 'tcg', '-nodefaults', '-display', 'none', '-no-user-config'];

export function bootTinyVm(o: TinyVmOptions): TinyVm {
  const consoleLog = join(o.dir, `${o.name}.console.log`);
  const qmpSocket = join(o.dir, `${o.name}.qmp`);
  const args = [
    ...TCG_ARGS,
    '-m', String(o.memMiB ?? 128),
    '-serial', `file:${consoleLog}`,
    '-kernel', o.kernel,
    '-initrd', o.initrd,
    '-append', o.append ?? 'console=ttyS0 quiet',
    '-drive', `file=${o.disk},if=virtio,format=raw`,
    '-qmp', `unix:${qmpSocket},server=on,wait=off`,
    ...(o.serial !== undefined ? ['-smbios', `type=1,serial=${o.serial}`] : []),
    ...(o.extraArgs ?? []),
  ];
  const proc = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const lines = () => (existsSync(consoleLog) ? readFileSync(consoleLog, 'utf8').split('\n').map((l) => l.replace(/\r$/, '')) : []);

  const waitForLine = async (re: RegExp, timeoutMs: number): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = lines().find((l) => re.test(l));
      if (hit !== undefined) return hit;
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`QEMU exited (${proc.exitCode ?? proc.signalCode}) before ${re}; stderr: ${stderr}\nconsole:\n${lines().join('\n')}`);
      }
      if (Date.now() > deadline) throw new Error(`no console line ${re} within ${timeoutMs} ms; console:\n${lines().join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const qmp = (commands: object[], timeoutMs = 10_000): Promise<unknown[]> =>
    new Promise((resolve, reject) => {
      const sock = createConnection(qmpSocket);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`QMP timed out; got ${JSON.stringify(replies)}`));
      }, timeoutMs);
      const queue = [{ execute: 'qmp_capabilities' }, ...commands];
      const replies: unknown[] = [];
      let buf = '';
      let greeted = false;
      sock.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      sock.on('data', (d) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
          buf = buf.slice(nl + 1);
          if ('QMP' in msg) greeted = true;
          else if ('event' in msg) continue;
          else if ('return' in msg || 'error' in msg) replies.push(msg);
          if (!greeted) continue;
          if (queue.length > 0 && replies.length === commands.length + 1 - queue.length) {
            sock.write(JSON.stringify(queue.shift()) + '\n');
          } else if (queue.length === 0 && replies.length === commands.length + 1) {
            clearTimeout(timer);
            sock.end();
            resolve(replies.slice(1));
          }
        }
      });
    });

  const kill = () => {
    if (proc.exitCode === null && proc.signalCode === null && proc.pid) process.kill(proc.pid, 'SIGKILL');
  };
  return { proc, consoleLog, qmpSocket, exited, lines, waitForLine, qmp, kill };
}

/** Waits for the QMP socket to appear (QEMU creates it right after start). */
export async function waitForSocket(path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > deadline) throw new Error(`${path} did not appear`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
