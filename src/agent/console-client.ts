import WebSocket from 'ws';
import type { HostRow } from '../state/schema.js';
import { AgentError } from './client.js';

/** What an agent keeps of each VM's serial console output, and so the most a tail can ask for. */
export const CONSOLE_MAX_TAIL = 1 << 20;

/** The console's part of the controller ↔ agent wire contract (protocol.ts holds the rest). */
export const CONSOLE_PATHS = {
  tail: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/console`,
  ws: (hostId: string, vmId: string) => `/agent/v1/hosts/${hostId}/vms/${vmId}/console/ws`,
} as const;

/**
 * Close codes of console websockets, the agent's and the controller's alike, so a client learns
 * why its console ended whichever side ended it. 1000 means the VM stopped.
 */
export const CONSOLE_CLOSE = { unauthenticated: 4401, notFound: 4404, notRunning: 4409, tooSlow: 4408, unreachable: 4502 } as const;

/** A websocket close reason is at most 123 bytes of UTF-8. */
export function closeReason(s: string): string {
  if (Buffer.byteLength(s) <= 123) return s;
  // A cut through a multi-byte character decodes to U+FFFD; drop it rather than show it.
  return `${Buffer.from(s).subarray(0, 119).toString().replace(/\uFFFD$/, '')}…`;
}

/** Controller side of the agent's console endpoints, authenticated by the host's node token. */
export class ConsoleClient {
  constructor(private readonly timeoutMs = 10_000) {}

  async tail(host: HostRow, vmId: string, bytes: number): Promise<Buffer> {
    const where = `agent of ${host.name} (${host.agent_url})`;
    let res: Response;
    try {
      res = await fetch(`${host.agent_url}${CONSOLE_PATHS.tail(host.id, vmId)}?bytes=${bytes}`, {
        headers: { authorization: `Bearer ${host.node_token}` }, signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw new AgentError(`${where} unreachable: ${(e as Error).message}`, true);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (res.ok) return body;
    let msg = `HTTP ${res.status}`;
    try { msg = (JSON.parse(body.toString()) as { error?: string }).error ?? msg; } catch { /* not JSON */ }
    throw new AgentError(`${where}: ${msg}`, res.status >= 500);
  }

  /** The agent sends the last `tailBytes` of output first, then live output; frames are binary. */
  attach(host: HostRow, vmId: string, tailBytes: number): WebSocket {
    const url = new URL(host.agent_url + CONSOLE_PATHS.ws(host.id, vmId));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('tail', String(tailBytes));
    return new WebSocket(url, { headers: { authorization: `Bearer ${host.node_token}` }, handshakeTimeout: this.timeoutMs, maxPayload: 4 * CONSOLE_MAX_TAIL });
  }
}
