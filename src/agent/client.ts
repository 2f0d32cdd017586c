import { setTimeout as sleep } from 'node:timers/promises';
import type { VmReport, VmSpec, StopOptions } from '../compute/driver.js';
import type { HostRow } from '../state/schema.js';
import { AGENT_PATHS } from './protocol.js';

export class AgentError extends Error {
  constructor(message: string, readonly retryable: boolean) { super(message); this.name = 'AgentError'; }
}

/** Controller side of the agent RPC: authenticated by the host's node token, retried because
 * every agent operation is idempotent. */
export class AgentClient {
  constructor(private readonly opts: { timeoutMs: number; attempts: number } = { timeoutMs: 120_000, attempts: 3 }) {}

  private async call<T>(host: HostRow, path: string, body: unknown, method = 'POST'): Promise<T> {
    let last: AgentError | null = null;
    for (let i = 0; i < this.opts.attempts; i++) {
      if (i > 0) await sleep(500 * 2 ** i);
      try {
        const res = await fetch(host.agent_url + path, {
          method, headers: { authorization: `Bearer ${host.node_token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(this.opts.timeoutMs),
        });
        const text = await res.text();
        if (res.ok) return (text ? JSON.parse(text) : undefined) as T;
        const msg = safeError(text) ?? `HTTP ${res.status}`;
        last = new AgentError(`agent of ${host.name} (${host.agent_url}): ${msg}`, res.status >= 500 && res.status !== 501);
        if (!last.retryable) throw last;
      } catch (e) {
        if (e instanceof AgentError && !e.retryable) throw e;
        last = e instanceof AgentError ? e : new AgentError(`agent of ${host.name} (${host.agent_url}) unreachable: ${(e as Error).message}`, true);
      }
    }
    throw last!;
  }

  start(host: HostRow, spec: VmSpec) { return this.call<void>(host, AGENT_PATHS.start(host.id, spec.vmId), spec); }
  stop(host: HostRow, vmId: string, opts: StopOptions) { return this.call<void>(host, AGENT_PATHS.stop(host.id, vmId), opts); }
  reset(host: HostRow, vmId: string) { return this.call<void>(host, AGENT_PATHS.reset(host.id, vmId), {}); }
  list(host: HostRow) { return this.call<VmReport[]>(host, AGENT_PATHS.list(host.id), undefined, 'GET'); }
}

function safeError(text: string): string | null {
  try { return (JSON.parse(text) as { error?: string }).error ?? null; } catch { return null; }
}
