/** Helpers of the API tests: raw XML-RPC bodies, fault parsing, Python clients. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KUMO, type Creds } from '../helpers/cloud.js';

export const CLIENTS = join(process.cwd(), 'test/clients');

export const basic = (user: string, key: string) => `Basic ${Buffer.from(`${user}:${key}`).toString('base64')}`;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** `<value>` fragments, so a test can build exactly the (possibly wrong) call it means to send. */
export const xv = {
  str: (s: string) => `<value><string>${esc(s)}</string></value>`,
  int: (n: number) => `<value><int>${n}</int></value>`,
  bool: (b: boolean) => `<value><boolean>${b ? 1 : 0}</boolean></value>`,
  struct: (members: Record<string, string>) =>
    `<value><struct>${Object.entries(members).map(([k, v]) => `<member><name>${esc(k)}</name>${v}</member>`).join('')}</struct></value>`,
};

export const xmlCall = (method: string, ...values: string[]) =>
  `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${values.map((v) => `<param>${v}</param>`).join('')}</params></methodCall>`;

export interface RpcReply { status: number; contentType: string; text: string; fault: { code: number; message: string } | null }

/** Enough of a methodResponse reader for tests: the fault struct is all we look into. */
export function parseFault(text: string): RpcReply['fault'] {
  const m = /<fault>[\s\S]*?<name>faultCode<\/name>\s*<value>\s*<(?:int|i4)>(-?\d+)<\/(?:int|i4)>[\s\S]*?<name>faultString<\/name>\s*<value>\s*(?:<string>)?([\s\S]*?)(?:<\/string>)?\s*<\/value>/.exec(text);
  return m ? { code: Number(m[1]), message: m[2].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') } : null;
}

export async function postRpc(url: string, body: string, headers: Record<string, string>): Promise<RpcReply> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/xml', ...headers }, body });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text, fault: parseFault(text) };
}

/** The environment haas_*.py scripts read their endpoint and keys from. */
export const pythonEnv = (c: Creds): Record<string, string> => ({
  KUMO_RPC_URL: c.xmlrpcUrl, KUMO_ADMIN_USER: c.admin.user, KUMO_ADMIN_KEY: c.admin.key,
  KUMO_TENANT_USER: c.tenant.user, KUMO_TENANT_KEY: c.tenant.key,
});

export interface PyResult { code: number | null; stdout: string; stderr: string; report: any }

/** Runs a script of test/clients with python3; killed by its pid if it overstays. */
export async function runPython(script: string, env: Record<string, string>, timeoutMs = 30_000): Promise<PyResult> {
  const child = spawn('python3', [join(CLIENTS, script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const timer = setTimeout(() => { if (child.pid) process.kill(child.pid, 'SIGKILL'); }, timeoutMs);
  const code = await exited;
  clearTimeout(timer);
  let report: unknown = null;
  try { report = JSON.parse(stdout.trim().split('\n').pop() ?? ''); } catch { /* the assertion on it shows stderr */ }
  return { code, stdout, stderr, report };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A kumo process a test starts and stops by its pid (SIGTERM, then SIGKILL if it lingers). */
export class KumoProc {
  readonly proc: ChildProcess;
  out = '';
  private readonly exited: Promise<void>;

  constructor(readonly label: string, args: string[]) {
    this.proc = spawn(process.execPath, [KUMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d) => { this.out += d; });
    this.proc.stderr!.on('data', (d) => { this.out += d; });
    this.exited = new Promise((resolve) => this.proc.once('exit', () => resolve()));
  }

  get running(): boolean { return this.proc.exitCode === null && this.proc.signalCode === null; }

  /** Waits for a line of its output; the first capture group is returned. */
  async waitForOutput(re: RegExp, timeoutMs = 20_000): Promise<string> {
    return waitFor(`${this.label} to print ${re}`, async () => {
      if (!this.running) throw new Error(`${this.label} exited (${this.proc.exitCode ?? this.proc.signalCode}): ${this.out}`);
      return re.exec(this.out)?.[1];
    }, timeoutMs);
  }

  /** A crash: no handler runs, nothing is flushed or closed. */
  async kill9(): Promise<void> {
    if (this.running && this.proc.pid) process.kill(this.proc.pid, 'SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (!this.running || !this.proc.pid) return;
    process.kill(this.proc.pid, 'SIGTERM');
    const lingering = setTimeout(() => { if (this.running && this.proc.pid) process.kill(this.proc.pid, 'SIGKILL'); }, 10_000);
    await this.exited;
    clearTimeout(lingering);
  }
}

/** A port free right now, for a server that must come back on the same port after a restart. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}
