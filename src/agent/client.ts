import { setTimeout as sleep } from 'node:timers/promises';
import type { VmReport, VmSpec, StopOptions } from '../compute/driver.js';
import { Fault, KumoError } from '../core/errors.js';
import type { HostRow } from '../state/schema.js';
import { AGENT_PATHS, type RelocateBody, type RelocateEvent, type RelocateProgress } from './protocol.js';
import type { RelocateResult } from '../storage/relocation/step.js';

/** `message` names the agent's URL, for the operator's log; `detail` is what the agent said. */
export class AgentError extends Error {
  constructor(message: string, readonly retryable: boolean, readonly unreachable = false, readonly detail = message) {
    super(message); this.name = 'AgentError';
  }
}

/** What a user may see of a failed agent call: the host's name and the agent's own words, never
 * its address. An agent that does not answer is a state of the host, not a bug. */
export function agentFault(action: string, host: HostRow, e: unknown): KumoError {
  if (e instanceof KumoError) return e;
  if (e instanceof AgentError && e.unreachable) {
    return new KumoError(Fault.INVALID_STATE, `${action}: host ${host.name} does not answer (its agent is down or unreachable); try again when it is back`);
  }
  return new KumoError(Fault.INTERNAL, `${action} on host ${host.name} failed: ${e instanceof AgentError ? e.detail : (e as Error).message}`);
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
        last = new AgentError(`agent of ${host.name} (${host.agent_url}): ${msg}`, res.status >= 500 && res.status !== 501, false, msg);
        if (!last.retryable) throw last;
      } catch (e) {
        if (e instanceof AgentError && !e.retryable) throw e;
        last = e instanceof AgentError ? e : new AgentError(`agent of ${host.name} (${host.agent_url}) unreachable: ${(e as Error).message}`, true, true);
      }
    }
    throw last!;
  }

  start(host: HostRow, spec: VmSpec) { return this.call<void>(host, AGENT_PATHS.start(host.id, spec.vmId), spec); }
  stop(host: HostRow, vmId: string, opts: StopOptions) { return this.call<void>(host, AGENT_PATHS.stop(host.id, vmId), opts); }
  reset(host: HostRow, vmId: string) { return this.call<void>(host, AGENT_PATHS.reset(host.id, vmId), {}); }
  list(host: HostRow) { return this.call<VmReport[]>(host, AGENT_PATHS.list(host.id), undefined, 'GET'); }

  /**
   * Relocates (adds, syncs, removes a location of) a volume the host's frontend holds, passing each
   * progress line to `onProgress`. The answer streams for as long as the copy takes, so the timeout
   * applies to silence, not to the whole copy; a broken stream is retried (the operation is idempotent).
   */
  async relocate(host: HostRow, volumeId: string, body: RelocateBody,
    onProgress: (p: RelocateProgress) => Promise<void> | void): Promise<RelocateResult> {
    const who = `agent of ${host.name} (${host.agent_url})`;
    let last: AgentError | null = null;
    for (let i = 0; i < this.opts.attempts; i++) {
      if (i > 0) await sleep(500 * 2 ** i);
      const ac = new AbortController();
      let idle: NodeJS.Timeout = setTimeout(() => ac.abort(), this.opts.timeoutMs);
      const alive = () => { clearTimeout(idle); idle = setTimeout(() => ac.abort(), this.opts.timeoutMs); };
      try {
        const res = await fetch(host.agent_url + AGENT_PATHS.relocate(host.id, volumeId), {
          method: 'POST', headers: { authorization: `Bearer ${host.node_token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body), signal: ac.signal,
        });
        if (!res.ok || !res.body) {
          const text = await res.text();
          last = new AgentError(`${who}: ${safeError(text) ?? `HTTP ${res.status}`}`, res.status >= 500 && res.status !== 501);
          if (!last.retryable) throw last;
          continue;
        }
        let buf = '';
        const decoder = new TextDecoder();
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
          alive();
          buf += decoder.decode(chunk, { stream: true });
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const text = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!text) continue;
            const e = JSON.parse(text) as RelocateEvent;
            if ('error' in e) throw new AgentError(`${who}: ${e.error}`, false);
            if ('result' in e) return e.result;
            try { await onProgress(e.progress); } catch (err) { throw new CallerError(err); }
          }
        }
        last = new AgentError(`${who}: the relocation's answer ended before the relocation did`, true);
      } catch (e) {
        if (e instanceof CallerError) throw e.cause;
        if (e instanceof AgentError && !e.retryable) throw e;
        last = e instanceof AgentError ? e : new AgentError(`${who} unreachable or silent: ${(e as Error).message}`, true);
      } finally {
        clearTimeout(idle);
      }
    }
    throw last!;
  }
}

/** An error of the caller's progress callback: passed through, never retried. */
class CallerError extends Error {
  constructor(override readonly cause: unknown) { super('progress callback failed'); }
}

function safeError(text: string): string | null {
  try { return (JSON.parse(text) as { error?: string }).error ?? null; } catch { return null; }
}
