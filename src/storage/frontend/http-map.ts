/**
 * The MapSource of frontends outside the controller (agents, `kumo vol export`): each call is one
 * POST of JSON to the controller's STORAGE_PATHS route, naming the holder and the lease's epoch.
 *
 * Answers become the errors the session expects: 409 `{lease: "held"}` → LeaseHeld, `{lease:
 * "lost"}` → LeaseLost, problem+json → KumoError with its fault code. Every call is idempotent on
 * the controller's side (wire.ts), so a call whose answer never arrived (network error, timeout)
 * is sent again a few times before the error reaches the caller.
 *
 * The controller takes bodies of at most 1 MiB (api/server.ts), a MapSource call up to 65536
 * entries: allocate, update and discard go as calls of at most MAX_CALL_ENTRIES entries each, one
 * after the other under the same epoch. Not atomic as a whole, but each call is idempotent and the
 * session only reports success once every part has succeeded.
 */
import { Fault, KumoError, type FaultCode } from '../../core/errors.js';
import {
  STORAGE_PATHS, type AddLocationReply, type AllocateBody, type AllocateReply, type DiscardBody, type FrontendBody, type HandoverBody, type LeaseReply, type LocationBody, type OpenReply, type UpdateBody,
} from '../wire.js';
import { LeaseHeld, LeaseLost, type BlockEntry, type MapSource, type NodeAddress, type ReplicaChange, type VolumeMap } from './map.js';

/** Entries per call: a replica change is at most ~120 bytes of JSON (a 64-character node id), so 8192 keep a body under 1 MiB. */
export const MAX_CALL_ENTRIES = 8192;

/** `a` in slices of at most `n`; an empty `a` is one empty slice (the call still checks the lease). */
function slices<T>(a: T[], n = MAX_CALL_ENTRIES): T[][] {
  const out: T[][] = [];
  for (let i = 0; i === 0 || i < a.length; i += n) out.push(a.slice(i, i + n));
  return out;
}

export type MapAuth = { bearer: string } | { basic: { user: string; key: string } };

export interface HttpMapSourceOptions {
  controllerUrl: string;
  /** The lease holder this source speaks for: a host id of the agent, or `export:<id>`. */
  holder: string;
  /** An agent's node token (bearer) or an API user's key (bearer or basic). */
  auth: MapAuth;
  /** Per attempt. Default 10 s. */
  timeoutMs?: number;
  /** Attempts after the first when the controller cannot be reached. Default 3. */
  retries?: number;
}

/** The controller could not be reached (after the retries). */
export class ControllerUnreachable extends Error {
  constructor(readonly url: string, cause: string) {
    super(`cannot reach the controller at ${url}: ${cause}`);
    this.name = 'ControllerUnreachable';
  }
}

export class HttpMapSource implements MapSource {
  private readonly base: string;
  private readonly authorization: string;

  constructor(readonly o: HttpMapSourceOptions) {
    this.base = o.controllerUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
    this.authorization = 'bearer' in o.auth
      ? `Bearer ${o.auth.bearer}`
      : `Basic ${Buffer.from(`${o.auth.basic.user}:${o.auth.basic.key}`).toString('base64')}`;
  }

  get holder(): string { return this.o.holder; }

  async open(volumeId: string): Promise<VolumeMap> {
    return this.call<OpenReply>(volumeId, undefined, STORAGE_PATHS.open(volumeId), { holder: this.o.holder });
  }

  async renew(volumeId: string, epoch: number): Promise<void> {
    await this.call(volumeId, epoch, STORAGE_PATHS.renew(volumeId), this.body(epoch));
  }

  async allocate(volumeId: string, epoch: number, blocks: number[]): Promise<BlockEntry[]> {
    const entries: BlockEntry[] = [];
    for (const part of slices(blocks)) {
      const body: AllocateBody = { ...this.body(epoch), blocks: part };
      entries.push(...(await this.call<AllocateReply>(volumeId, epoch, STORAGE_PATHS.allocate(volumeId), body)).blocks);
    }
    return entries;
  }

  async update(volumeId: string, epoch: number, changes: ReplicaChange[]): Promise<void> {
    for (const part of slices(changes)) {
      const body: UpdateBody = { ...this.body(epoch), changes: part };
      await this.call(volumeId, epoch, STORAGE_PATHS.update(volumeId), body);
    }
  }

  async discard(volumeId: string, epoch: number, blocks: number[]): Promise<void> {
    for (const part of slices(blocks)) {
      const body: DiscardBody = { ...this.body(epoch), blocks: part };
      await this.call(volumeId, epoch, STORAGE_PATHS.discard(volumeId), body);
    }
  }

  async addLocation(volumeId: string, epoch: number, nodeId: string): Promise<NodeAddress> {
    const body: LocationBody = { ...this.body(epoch), nodeId };
    return this.call<AddLocationReply>(volumeId, epoch, STORAGE_PATHS.addLocation(volumeId), body);
  }

  async removeLocation(volumeId: string, epoch: number, nodeId: string): Promise<void> {
    const body: LocationBody = { ...this.body(epoch), nodeId };
    await this.call(volumeId, epoch, STORAGE_PATHS.removeLocation(volumeId), body);
  }

  async release(volumeId: string, epoch: number): Promise<void> {
    await this.call(volumeId, epoch, STORAGE_PATHS.release(volumeId), this.body(epoch));
  }

  async handover(volumeId: string, epoch: number, toHolder: string): Promise<void> {
    const body: HandoverBody = { ...this.body(epoch), toHolder };
    await this.call(volumeId, epoch, STORAGE_PATHS.handover(volumeId), body);
  }

  /** Not part of MapSource: the epoch of the lease this holder has, to give back one handed to it that it never opened. */
  async heldEpoch(volumeId: string): Promise<number | null> {
    return (await this.call<LeaseReply>(volumeId, undefined, STORAGE_PATHS.lease(volumeId), { holder: this.o.holder })).epoch;
  }

  private body(epoch: number): FrontendBody { return { holder: this.o.holder, epoch }; }

  /** Sends until an answer arrives (at most 1 + retries times), then turns a non-2xx answer into its error. */
  private async call<T>(volumeId: string, epoch: number | undefined, path: string, body: unknown): Promise<T> {
    const retries = this.o.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      let text: string;
      try {
        res = await fetch(this.base + path, {
          method: 'POST', body: JSON.stringify(body),
          headers: { 'content-type': 'application/json', accept: 'application/json', authorization: this.authorization },
          signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000),
        });
        text = await res.text();
      } catch (e) {
        const err = e as Error & { cause?: Error };
        if (attempt >= retries) throw new ControllerUnreachable(this.base, err.cause?.message ?? err.message);
        await new Promise((r) => setTimeout(r, 100 * 3 ** attempt));
        continue;
      }
      if (res.ok) return (text ? JSON.parse(text) : null) as T;
      throw this.failure(res.status, text, volumeId, epoch, path);
    }
  }

  private failure(status: number, text: string, volumeId: string, epoch: number | undefined, path: string): Error {
    let p: { lease?: string; holder?: string; code?: number; title?: string; detail?: string; error?: string } = {};
    try { p = JSON.parse(text) ?? {}; } catch { /* not JSON: the status says it */ }
    if (status === 409 && p.lease === 'held') return new LeaseHeld(volumeId, p.holder ?? 'another frontend');
    if (status === 409 && p.lease === 'lost') return new LeaseLost(volumeId, epoch ?? 0);
    const detail = p.detail ?? p.error ?? (text.slice(0, 300) || `HTTP ${status}`);
    if (typeof p.code === 'number' && Object.values(Fault).includes(p.code as FaultCode)) return new KumoError(p.code as FaultCode, detail);
    if (status === 401 || status === 403) return new KumoError(Fault.AUTHORIZATION, `the controller at ${this.base} refused the credentials: ${detail}`);
    if (status === 404) return new KumoError(Fault.NOT_FOUND, `${path}: ${detail}`);
    return new Error(`the controller at ${this.base} answered ${path} with HTTP ${status}: ${detail}`);
  }
}
