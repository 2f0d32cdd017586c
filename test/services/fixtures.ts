import assert from 'node:assert/strict';
import Fastify, { type FastifyInstance } from 'fastify';
import { Agent } from '../../src/agent/server.js';
import { AgentClient } from '../../src/agent/client.js';
import { agentRoutes } from '../../src/api/agent-routes.js';
import { storageRoutes } from '../../src/api/storage-routes.js';
import type { AgentStorage } from '../../src/agent/storage.js';
import { SimDriver } from '../../src/compute/sim/driver.js';
import { KumoError, faultName } from '../../src/core/errors.js';
import { RequestEngine } from '../../src/requests/engine.js';
import { powerHandlers } from '../../src/requests/handlers/power.js';
import { migrateHandlers } from '../../src/requests/handlers/migrate.js';
import { drainHandlers } from '../../src/requests/handlers/drain.js';
import { guestConfigHandlers } from '../../src/requests/handlers/guest-config.js';
import { DEFAULT_MIGRATION_POLICY, type MigrationPolicyConfig } from '../../src/services/migration-policy.js';
import { captureHandlers } from '../../src/requests/handlers/capture.js';
import { locationHandlers } from '../../src/requests/handlers/locations.js';
import { restoreHandlers } from '../../src/requests/handlers/restore.js';
import type { Services } from '../../src/services/index.js';
import type { HostRegistration } from '../../src/services/hosts.js';
import type { Principal } from '../../src/services/principal.js';
import { ControllerStorage } from '../../src/storage/controller/sessions.js';
import { silent } from '../helpers/db.js';

/** Asserts that `p` fails with the contract fault `code` (and, optionally, a message matching `msg`). */
export async function fault(p: Promise<unknown>, code: number, msg?: RegExp): Promise<KumoError> {
  let err: unknown;
  try { await p; } catch (e) { err = e; }
  assert.ok(err instanceof KumoError, `expected fault ${faultName(code)}, got ${err === undefined ? 'success' : String(err)}`);
  assert.equal(faultName(err.code), faultName(code), err.message);
  if (msg) assert.match(err.message, msg);
  return err;
}

export const HEX12 = /^[0-9a-f]{12}$/;

/** Hosts whose agent URL answers nothing: enough for placement dry-runs, never for power-on. */
export async function registerDeadHosts(s: Services, zone: string, hosts: (Partial<HostRegistration> & { name: string })[]): Promise<string[]> {
  const r = await s.hosts.register(await s.hosts.joinToken(), {
    zone, url: 'http://127.0.0.1:9', driver: 'sim', accel: 'sim',
    hosts: hosts.map((h) => ({ vcpus: 16, memoryMiB: 32768, architectures: ['x86_64', 'i686'], ...h })),
  });
  return r.hosts.map((h) => h.hostId);
}

/** What a test may change in the in-process cloud's agent. */
export interface CloudParts {
  driver?: SimDriver;
  /** More sim hosts served by the same agent (live migration, drains). */
  moreHosts?: { name: string; driver: SimDriver }[];
  /** Migration policy settings that differ from the default. */
  migration?: Partial<MigrationPolicyConfig>;
  heartbeatMs?: number;
  /** Builds the agent's storage (volumes over NBD) once the controller's URL is known; without it disks are pathless. */
  storage?: (controllerUrl: string) => AgentStorage;
  /** How long a running guest has to confirm an init-API change (default 2 s). */
  guestConfirmTimeoutMs?: number;
}

/**
 * The controller's moving parts in this process: the agents' side door (registration, heartbeats),
 * an agent with the sim driver on 127.0.0.1, and a request engine with the controller's handlers.
 */
export class InProcessCloud {
  private door: FastifyInstance | null = null;
  agent: Agent | null = null;
  engine: RequestEngine | null = null;
  /** The controller's own frontend (restores, relocations of stopped volumes). */
  storage: ControllerStorage | null = null;
  hostId = '';

  constructor(protected readonly s: Services, private readonly parts: CloudParts = {}) {}

  async start(hostName = 'sim-1', zone = 'zone-a'): Promise<void> {
    const door = Fastify({ logger: false });
    this.door = door;
    await door.register(async (x) => agentRoutes(x, this.s));
    await door.register(async (x) => storageRoutes(x, this.s));
    await door.listen({ host: '127.0.0.1', port: 0 });
    const addr = door.server.address();
    const controllerUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    this.agent = new Agent({
      controllerUrl, joinToken: await this.s.hosts.joinToken(), zone, listen: { host: '127.0.0.1', port: 0 }, log: silent,
      heartbeatMs: this.parts.heartbeatMs, storage: this.parts.storage?.(controllerUrl),
      hosts: [{ name: hostName, driver: this.parts.driver ?? new SimDriver({ bootMs: 20, shutdownMs: 20 }) }, ...(this.parts.moreHosts ?? [])]
        .map((h) => ({ ...h, vcpus: 8, memoryMiB: 16384, architectures: ['x86_64', 'i686'] })),
    });
    await this.agent.start();
    const host = await this.s.db.k.selectFrom('hosts').select('id').where('name', '=', hostName).executeTakeFirstOrThrow();
    this.hostId = host.id;
    await this.s.events.start(50);
    this.storage = new ControllerStorage(this.s, `test-${hostName}`, silent);
    this.owner = `test-${hostName}`;
    await this.startEngine();
  }

  private owner = '';

  /** The controller's request engine and handlers; restartEngine() stands for a controller restart. */
  private async startEngine(): Promise<void> {
    const agents = new AgentClient({ timeoutMs: 10_000, attempts: 1 });
    this.engine = new RequestEngine(this.s.db, this.s.events, {
      ...powerHandlers({ db: this.s.db, events: this.s.events, agents, policy: this.s.policy, metrics: this.s.metrics, gracefulStopMs: 100 }),
      ...restoreHandlers({ s: this.s, storage: this.storage! }),
      ...locationHandlers({ s: this.s, agents, storage: this.storage! }),
      ...captureHandlers({ s: this.s, storage: this.storage! }),
      ...migrateHandlers({ s: this.s, agents, storage: this.storage!, migration: { ...DEFAULT_MIGRATION_POLICY, dirtyRateSampleSeconds: 1, ...this.parts.migration } }),
      ...drainHandlers({ s: this.s, concurrency: 2 }),
      ...guestConfigHandlers({ db: this.s.db, agents, confirmTimeoutMs: this.parts.guestConfirmTimeoutMs ?? 2000, pollMs: 50 }),
    }, silent, { owner: this.owner, pollMs: 50 });
    this.s.requests.wake = this.engine.wake;
    await this.engine.start();
  }

  /** Stops the engine while its requests run (their leases lapse) and starts a new one, which resumes them. */
  async restartEngine(): Promise<void> {
    await this.engine?.stop();
    await this.startEngine();
  }

  /** Waits for a request to end and returns what getRequestIdInfo would. */
  async finish(p: Principal, requestId: string, seconds = 10) {
    const info = await this.s.requests.wait(p, requestId, seconds);
    assert.notEqual(info.status, 'queued', `${requestId} never started`);
    assert.notEqual(info.status, 'running', `${requestId} did not finish in ${seconds} s`);
    return info;
  }

  async stop(): Promise<void> {
    this.s.requests.wake = () => {};
    await this.engine?.stop();
    await this.storage?.close();
    await this.agent?.stop();
    await this.door?.close();
    this.s.events.stop();
  }
}
