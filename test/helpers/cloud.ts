import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const KUMO = join(process.cwd(), 'dist/src/cli/main.js');

export interface Creds { xmlrpcUrl: string; restUrl: string; admin: { user: string; key: string }; tenant: { user: string; key: string } }

/** A `kumo up` (or other kumo server command) started by a test and stopped by it, by pid. */
export class Cloud {
  proc: ChildProcess | null = null;
  out = '';
  constructor(readonly data: string, readonly args: string[]) {}

  /** The sim driver unless `extra` asks for another: most tests are about the control plane. */
  static async up(extra: string[] = [], data = mkdtempSync(join(tmpdir(), 'kumo-test-'))): Promise<Cloud> {
    const c = new Cloud(data, ['up', '--data', data, '--port', '0', '--sim-boot-ms', '300', ...(extra.includes('--driver') ? [] : ['--driver', 'sim']), ...extra]);
    await c.start();
    return c;
  }

  async start(): Promise<void> {
    const started = Date.now();
    this.proc = spawn(process.execPath, [KUMO, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d) => { this.out += d; });
    this.proc.stderr!.on('data', (d) => { this.out += d; });
    while (!/REST: +http/.test(this.out)) {
      if (this.proc.exitCode !== null) throw new Error(`kumo exited: ${this.out}`);
      if (Date.now() - started > 30_000) throw new Error(`kumo did not start: ${this.out}`);
      await sleep(50);
    }
    await this.waitForHost();
  }

  get creds(): Creds { return JSON.parse(readFileSync(join(this.data, 'credentials.json'), 'utf8')); }
  get url(): string { return this.creds.restUrl.replace(/\/v1$/, ''); }

  /** The agent registers asynchronously; tests that power VMs on need its host. */
  private async waitForHost(): Promise<void> {
    if (!existsSync(join(this.data, 'credentials.json'))) return;
    const c = this.creds;
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${c.restUrl}/hosts`, { headers: { authorization: `Bearer ${c.admin.key}` } });
      if (res.ok && ((await res.json()) as unknown[]).length > 0) return;
      await sleep(50);
    }
    throw new Error('no agent registered');
  }

  /** SIGKILL: what a crash looks like. The agent child is killed too (it would be orphaned). */
  kill9(): void { this.killTree('SIGKILL'); }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    const gone = new Promise((r) => this.proc!.once('exit', r));
    this.proc.kill('SIGTERM');
    await Promise.race([gone, sleep(10_000, undefined, { ref: false })]);
    if (this.proc.exitCode === null) this.killTree('SIGKILL');
  }

  private killTree(signal: NodeJS.Signals): void {
    if (!this.proc?.pid) return;
    try {
      for (const pid of readFileSync(`/proc/${this.proc.pid}/task/${this.proc.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) process.kill(Number(pid), signal);
    } catch { /* no children */ }
    this.proc.kill(signal);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.data, { recursive: true, force: true });
  }
}

/** fetch against the REST API with a user's key. */
export async function rest(c: Cloud, who: 'admin' | 'tenant', method: string, path: string, body?: unknown) {
  const creds = c.creds;
  const res = await fetch(`${creds.restUrl}${path}`, {
    method, headers: { authorization: `Bearer ${creds[who].key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: text ? JSON.parse(text) : null };
}
