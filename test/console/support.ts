import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { KumoProc, waitFor } from '../api/support.js';
import { Cloud, rest } from '../helpers/cloud.js';

export interface Session { ws: WebSocket; text(): string; closed: { code: number; reason: string } | null }

/** A console websocket that records what it receives and how it ended; resolves once open. */
export function openSocket(url: string, headers: Record<string, string> = {}): Promise<Session> {
  const ws = new WebSocket(url, { headers });
  const chunks: Buffer[] = [];
  const s: Session = { ws, text: () => Buffer.concat(chunks).toString(), closed: null };
  ws.on('message', (d: Buffer) => chunks.push(d));
  ws.on('close', (code, reason) => { s.closed = { code, reason: reason.toString() }; });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(s));
    ws.once('error', reject);
  });
}

export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}

/**
 * A controller and a separate sim agent (`--driver sim`: its guest echoes console input), so the
 * console is tested the same way whether or not QEMU is installed where the tests run.
 */
export class SimCloud {
  readonly data = mkdtempSync(join(tmpdir(), 'kumo-console-'));
  /** Not started: it only reads the controller's credentials.json, for `rest()` and the CLI's --data. */
  readonly cloud = new Cloud(this.data, []);
  private controller: KumoProc | null = null;
  private agent: KumoProc | null = null;

  async start(): Promise<void> {
    this.controller = new KumoProc('controller', ['controller', '--data', this.data, '--port', '0', '--log', join(this.data, 'controller.log')]);
    const url = await this.controller.waitForOutput(/REST: +(http:\/\/\S+)\/v1/);
    this.agent = new KumoProc('agent', ['agent', '--driver', 'sim', '--controller', url, '--join-token-file', join(this.data, 'join-token'),
      '--listen', '127.0.0.1:0', '--data', join(this.data, 'agent'), '--host', 'h1', '--sim-boot-ms', '50', '--log', join(this.data, 'agent.log')]);
    await waitFor('the agent to register', async () => ((await rest(this.cloud, 'admin', 'GET', '/hosts')).body as { status: string }[]).some((h) => h.status === 'up'), 20_000);
  }

  async stop(): Promise<void> {
    await this.agent?.stop();
    await this.controller?.stop();
    rmSync(this.data, { recursive: true, force: true });
  }
}
