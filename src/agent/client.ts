import { setTimeout as sleep } from 'node:timers/promises';
import type { VmReport, VmSpec, StopOptions } from '../compute/driver.js';
import { Fault, KumoError } from '../core/errors.js';
import type { HostRow } from '../state/schema.js';
import { MigrationError, type MigrationOutcome, type MigrationProgress } from '../compute/migration.js';
import {
  AGENT_PATHS, type DirtyRateBody, type DirtyRateReply, type HandoverBody, type IncomingBody, type IncomingReply, type MigrateBody,
  type GuestPolling, type MetadataBody, type MigrateEvent, type RelocateBody, type RelocateEvent, type RelocateProgress, type ResumeOutgoingBody,
} from './protocol.js';
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
   * progress line to `onProgress`. A broken stream is retried: the operation is idempotent.
   */
  relocate(host: HostRow, volumeId: string, body: RelocateBody,
    onProgress: (p: RelocateProgress) => Promise<void> | void): Promise<RelocateResult> {
    return this.stream<RelocateEvent, RelocateResult>(host, AGENT_PATHS.relocate(host.id, volumeId), body, this.opts.attempts, undefined, (e) => {
      if ('error' in e) throw new AgentError(`agent of ${host.name} (${host.agent_url}): ${e.error}`, false, false, e.error);
      if ('result' in e) return { done: e.result };
      return { progress: () => onProgress(e.progress) };
    });
  }

  /**
   * Runs the VM's outgoing live migration on its source host, passing progress samples on. Never
   * retried: a broken stream makes the agent cancel the migration, and the VM runs on at the source.
   * A migration QEMU did not complete ends in MigrationError with its kind.
   */
  migrate(host: HostRow, vmId: string, body: MigrateBody, onProgress: (p: MigrationProgress) => Promise<void> | void, signal?: AbortSignal): Promise<MigrationOutcome> {
    return this.stream<MigrateEvent, MigrationOutcome>(host, AGENT_PATHS.migrate(host.id, vmId), body, 1, signal, (e) => {
      if ('error' in e) throw new MigrationError(vmId, e.kind, e.error);
      if ('result' in e) return { done: e.result };
      return { progress: () => onProgress(e.progress) };
    });
  }

  incoming(host: HostRow, spec: VmSpec) { return this.call<IncomingReply>(host, AGENT_PATHS.incoming(host.id, spec.vmId), { spec } satisfies IncomingBody); }
  async dirtyRate(host: HostRow, vmId: string, seconds: number): Promise<number> {
    return (await this.call<DirtyRateReply>(host, AGENT_PATHS.dirtyRate(host.id, vmId), { seconds } satisfies DirtyRateBody)).bytesPerSecond;
  }
  migrateCancel(host: HostRow, vmId: string) { return this.call<void>(host, AGENT_PATHS.migrateCancel(host.id, vmId), {}); }
  handover(host: HostRow, vmId: string, toHostId: string) { return this.call<void>(host, AGENT_PATHS.handover(host.id, vmId), { toHostId } satisfies HandoverBody); }
  resumeIncoming(host: HostRow, vmId: string) { return this.call<void>(host, AGENT_PATHS.resumeIncoming(host.id, vmId), {}); }
  putMetadata(host: HostRow, vmId: string, md: MetadataBody) { return this.call<GuestPolling>(host, AGENT_PATHS.metadata(host.id, vmId), md, 'PUT'); }
  resumeOutgoing(host: HostRow, vmId: string, volumeIds: string[]) {
    return this.call<void>(host, AGENT_PATHS.resumeOutgoing(host.id, vmId), { volumeIds } satisfies ResumeOutgoingBody);
  }

  /**
   * POSTs `body` and reads the NDJSON answer line by line: `handle` turns a line into progress to
   * report or the final value (or throws). The timeout applies to silence, not to the whole
   * operation, which may take as long as a copy or a migration takes; `signal` hangs up.
   */
  private async stream<E, R>(host: HostRow, path: string, body: unknown, attempts: number, signal: AbortSignal | undefined,
    handle: (e: E) => { done: R } | { progress: () => Promise<void> | void }): Promise<R> {
    const who = `agent of ${host.name} (${host.agent_url})`;
    let last: AgentError | null = null;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await sleep(500 * 2 ** i);
      const ac = new AbortController();
      let idle: NodeJS.Timeout = setTimeout(() => ac.abort(), this.opts.timeoutMs);
      const alive = () => { clearTimeout(idle); idle = setTimeout(() => ac.abort(), this.opts.timeoutMs); };
      try {
        const res = await fetch(host.agent_url + path, {
          method: 'POST', headers: { authorization: `Bearer ${host.node_token}`, 'content-type': 'application/json' },
          body: JSON.stringify(body), signal: signal ? AbortSignal.any([ac.signal, signal]) : ac.signal,
        });
        if (!res.ok || !res.body) {
          const text = await res.text();
          const msg = safeError(text) ?? `HTTP ${res.status}`;
          last = new AgentError(`${who}: ${msg}`, res.status >= 500 && res.status !== 501, false, msg);
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
            let step: { done: R } | { progress: () => Promise<void> | void };
            try { step = handle(JSON.parse(text) as E); } catch (err) { throw new CallerError(err); }
            if ('done' in step) return step.done;
            try { await step.progress(); } catch (err) { throw new CallerError(err); }
          }
        }
        last = new AgentError(`${who}: the answer ended before the operation did`, true);
      } catch (e) {
        if (e instanceof CallerError) throw e.cause;
        if (e instanceof AgentError && !e.retryable) throw e;
        last = e instanceof AgentError ? e : new AgentError(`${who} unreachable or silent: ${(e as Error).message}`, true, true);
      } finally {
        clearTimeout(idle);
      }
    }
    throw last!;
  }
}

/** An error of the caller's callbacks (or a final error line): passed through, never retried. */
class CallerError extends Error {
  constructor(override readonly cause: unknown) { super('progress callback failed'); }
}

function safeError(text: string): string | null {
  try { return (JSON.parse(text) as { error?: string }).error ?? null; } catch { return null; }
}
