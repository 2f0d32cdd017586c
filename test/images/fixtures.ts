import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Fastify, { type FastifyInstance } from 'fastify';
import { AgentClient } from '../../src/agent/client.js';
import { Agent } from '../../src/agent/server.js';
import { makeResolver, type LocalResolver } from '../../src/agent/volumes.js';
import { agentRoutes } from '../../src/api/agent-routes.js';
import type { LaunchSpec } from '../../src/compute/driver.js';
import { SimDriver } from '../../src/compute/sim/driver.js';
import { RequestEngine } from '../../src/requests/engine.js';
import { powerHandlers } from '../../src/requests/handlers/power.js';
import { restoreHandlers } from '../../src/requests/handlers/restore.js';
import type { Services } from '../../src/services/index.js';
import type { Principal } from '../../src/services/principal.js';
import { silent } from '../helpers/db.js';

export const run = promisify(execFile);

/** A sim driver that remembers the LaunchSpec of each start, to check what the agent resolved. */
export class RecordingSim extends SimDriver {
  readonly launched = new Map<string, LaunchSpec>();
  override async start(spec: LaunchSpec): Promise<void> {
    this.launched.set(spec.vmId, spec);
    return super.start(spec);
  }
}

/** A raw file of `mib` MiB: every MiB filled with its own byte (`seed + i`), the last one left zero. */
export function rawImage(path: string, mib: number, seed: number): string {
  const buf = Buffer.alloc(mib * 1048576);
  for (let i = 0; i < mib - 1; i++) buf.fill((seed + i) & 0xff || 1, i * 1048576, (i + 1) * 1048576);
  writeFileSync(path, buf);
  return path;
}

/**
 * A controller's moving parts in this process, with an image store in a temp data dir, and an
 * agent (sim driver) that keeps volume files and an image cache in its own temp data dir and
 * heartbeats every 200 ms.
 */
export class ImageCloud {
  readonly dir = mkdtempSync(join(tmpdir(), 'kumo-images-'));
  readonly controllerData = join(this.dir, 'controller');
  readonly agentData = join(this.dir, 'agent');
  readonly driver = new RecordingSim({ bootMs: 20, shutdownMs: 20 });
  resolver!: LocalResolver;
  hostId = '';
  private door: FastifyInstance | null = null;
  private agent: Agent | null = null;
  private engine: RequestEngine | null = null;

  constructor(private readonly s: Services) {}

  async start(hostName = 'local-1', zone = 'zone-i'): Promise<void> {
    this.s.images.setDataDir(this.controllerData);
    const door = Fastify({ logger: false });
    this.door = door;
    await door.register(async (x) => agentRoutes(x, this.s));
    await door.listen({ host: '127.0.0.1', port: 0 });
    const addr = door.server.address();
    const controllerUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    this.resolver = makeResolver({ dataDir: this.agentData, controllerUrl });
    this.agent = new Agent({
      controllerUrl, joinToken: await this.s.hosts.joinToken(), zone, listen: { host: '127.0.0.1', port: 0 }, log: silent, heartbeatMs: 200,
      hosts: [{ name: hostName, vcpus: 8, memoryMiB: 16384, architectures: ['x86_64', 'i686'], driver: this.driver }],
      resolveLaunch: this.resolver,
    });
    await this.agent.start();
    this.hostId = (await this.s.db.k.selectFrom('hosts').select('id').where('name', '=', hostName).executeTakeFirstOrThrow()).id;
    await this.s.events.start(50);
    const agents = new AgentClient({ timeoutMs: 10_000, attempts: 1 });
    this.engine = new RequestEngine(this.s.db, this.s.events, {
      ...powerHandlers({ db: this.s.db, events: this.s.events, agents, policy: this.s.policy, metrics: this.s.metrics, gracefulStopMs: 100 }),
      ...restoreHandlers({ db: this.s.db, events: this.s.events, agents, policy: this.s.policy }),
    }, silent, { owner: `test-${hostName}`, pollMs: 50 });
    this.s.requests.wake = this.engine.wake;
    await this.engine.start();
  }

  volumeFile(volumeId: string): string { return join(this.agentData, 'volumes', `${volumeId}.raw`); }

  async finish(p: Principal, requestId: string, seconds = 30) {
    const info = await this.s.requests.wait(p, requestId, seconds);
    assert.ok(info.status !== 'queued' && info.status !== 'running', `${requestId} did not end in ${seconds} s: ${JSON.stringify(info)}`);
    return info;
  }

  async stop(): Promise<void> {
    this.s.requests.wake = () => {};
    await this.engine?.stop();
    await this.agent?.stop();
    await this.door?.close();
    this.s.events.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
