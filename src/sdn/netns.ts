/**
 * Runs one command, optionally inside a network namespace, with optional stdin. `ip netns exec`
 * switches namespace and then execs the command, so a batch stays one process either way.
 * The SDN drivers, the lab and the namespace tests all go through here.
 */
import { spawn } from 'node:child_process';

export class CommandError extends Error {
  constructor(readonly argv: string[], readonly code: number | null, readonly stderr: string) {
    super(`${argv.join(' ')}: ${stderr.trim() || `exit ${code}`}`);
    this.name = 'CommandError';
  }
}

export interface RunOptions { netns?: string; input?: string; timeoutMs?: number }

/** Namespace names kumo accepts: they end up on command lines and in /run/netns. */
const NETNS = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export function inNetns(netns: string | undefined, cmd: string, args: string[]): string[] {
  if (netns === undefined) return [cmd, ...args];
  if (!NETNS.test(netns)) throw new RangeError(`bad network namespace name ${JSON.stringify(netns)}`);
  return ['ip', 'netns', 'exec', netns, cmd, ...args];
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<{ stdout: string; stderr: string }> {
  const argv = inNetns(opts.netns, cmd, args);
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => reject(new CommandError(argv, null, e.message)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new CommandError(argv, code, stderr || (signal ? `killed by ${signal}` : '')));
    });
    // A command that exits before reading its stdin makes the pipe fail; its exit status says why.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
