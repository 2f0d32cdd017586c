import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AgentClient } from './agent/client.js';
import { buildServer } from './api/server.js';
import { RequestEngine } from './requests/engine.js';
import { powerHandlers } from './requests/handlers/power.js';
import { captureHandlers } from './requests/handlers/capture.js';
import { locationHandlers } from './requests/handlers/locations.js';
import { restoreHandlers } from './requests/handlers/restore.js';
import { migrateHandlers } from './requests/handlers/migrate.js';
import { drainHandlers } from './requests/handlers/drain.js';
import { guestConfigHandlers } from './requests/handlers/guest-config.js';
import { DEFAULT_MIGRATION_POLICY, type MigrationPolicyConfig } from './services/migration-policy.js';
import { makePolicy, type Overcommit } from './scheduler/index.js';
import { Services } from './services/index.js';
import { loadWriteWhitelist } from './services/write-whitelist.js';
import { SYSTEM } from './services/principal.js';
import type { VmType } from './services/vm-types.js';
import { openDb } from './state/db.js';
import { StorageReconciler } from './storage/controller/reconcile.js';
import { ControllerStorage } from './storage/controller/sessions.js';

export interface ControllerOptions {
  db: string; dataDir: string; host: string; port: number; name: string; log: Logger;
  overcommit?: Partial<Overcommit>; vmTypesFile?: string; gracefulStopMs?: number; leaseMs?: number;
  /** Live-migration policy settings that differ from DEFAULT_MIGRATION_POLICY. */
  migration?: Partial<MigrationPolicyConfig>; drainConcurrency?: number;
  /** How long a running guest has to confirm an init-API change (default 2 min). */
  guestConfirmTimeoutMs?: number;
  /** The operator's writeFile whitelist: a JSON array of glob patterns; default services/write-whitelist.ts. */
  writeWhitelistFile?: string;
}

export interface Controller {
  url: string; services: Services; app: FastifyInstance; engine: RequestEngine; joinToken: string;
  close(): Promise<void>;
}

export interface Credentials { xmlrpcUrl: string; restUrl: string; admin: { user: string; key: string }; tenant: { user: string; key: string } }

export async function startController(o: ControllerOptions): Promise<Controller> {
  const db = await openDb(o.db);
  o.log.info({ db: db.describe, name: o.name }, 'state store open');
  const services = new Services(db, makePolicy({ overcommit: o.overcommit }), o.log, { writeWhitelist: loadWriteWhitelist(o.writeWhitelistFile) });
  services.images.setDataDir(o.dataDir);
  await services.vmTypes.seedDefaults();
  if (o.vmTypesFile) await services.vmTypes.put(SYSTEM, JSON.parse(readFileSync(o.vmTypesFile, 'utf8')) as VmType[]);
  const joinToken = await services.hosts.joinToken();
  await services.events.start();
  const agents = new AgentClient();
  const storage = new ControllerStorage(services, o.name, o.log.child({ component: 'storage' }));
  const engine = new RequestEngine(db, services.events, {
    ...powerHandlers({ db, events: services.events, agents, policy: services.policy, metrics: services.metrics, gracefulStopMs: o.gracefulStopMs ?? 60_000 }),
    ...restoreHandlers({ s: services, storage }),
    ...locationHandlers({ s: services, agents, storage }),
    ...captureHandlers({ s: services, storage }),
    ...migrateHandlers({ s: services, agents, storage, migration: { ...DEFAULT_MIGRATION_POLICY, ...o.migration } }),
    ...drainHandlers({ s: services, concurrency: o.drainConcurrency ?? 2 }),
    ...guestConfigHandlers({ db, agents, confirmTimeoutMs: o.guestConfirmTimeoutMs ?? 120_000 }),
  }, o.log.child({ component: 'requests' }), { owner: o.name, leaseMs: o.leaseMs });
  services.requests.wake = engine.wake;
  const app = await buildServer(services, o.log);
  await app.listen({ host: o.host, port: o.port });
  const addr = app.server.address();
  const url = `http://${o.host}:${typeof addr === 'object' && addr ? addr.port : o.port}`;
  await engine.start();
  const monitor = setInterval(() => void services.hosts.markSilentHostsDown().then((down) => {
    if (down.length) o.log.warn({ hosts: down }, 'agents went quiet: hosts marked down');
  }).catch(() => {}), 5000);
  monitor.unref();
  const housekeeping = new StorageReconciler(services, storage.pool, o.log.child({ component: 'storage' }));
  housekeeping.start();
  mkdirSync(o.dataDir, { recursive: true });
  writeFileSync(join(o.dataDir, 'join-token'), `${joinToken}\n`, { mode: 0o600 });
  o.log.info({ url }, 'controller listening');
  return {
    url, services, app, engine, joinToken,
    async close() {
      clearInterval(monitor);
      await housekeeping.stop();
      await engine.stop();
      await storage.close();
      await app.close();
      services.events.stop();
      await db.close();
    },
  };
}

/** First start: an operator tenant with an admin user, and a demo tenant with a user, written to
 * credentials.json (0600) because API keys are stored only hashed. */
export async function bootstrapCredentials(c: Controller, dataDir: string): Promise<string | null> {
  const file = join(dataDir, 'credentials.json');
  const urls = { xmlrpcUrl: `${c.url}/RPC2`, restUrl: `${c.url}/v1` };
  if (existsSync(file)) {
    const creds = { ...JSON.parse(readFileSync(file, 'utf8')), ...urls } as Credentials;
    writeFileSync(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
    return file;
  }
  const anyUser = await c.services.db.k.selectFrom('api_users').select('id').executeTakeFirst();
  if (anyUser) return null;
  const t = c.services.tenants;
  const ops = await t.createTenant(SYSTEM, { name: 'operator', quota: { vms: 1000, vcpus: 4000, memoryMiB: 8388608, volumes: 4000, volumeGiB: 1048576, networks: 1000, ipAddresses: 1024 } });
  const demo = await t.createTenant(SYSTEM, { name: 'demo' });
  const creds: Credentials = {
    ...urls,
    admin: await t.createApiUser(SYSTEM, ops, { admin: true, name: 'admin' }),
    tenant: await t.createApiUser(SYSTEM, demo, { name: 'demo' }),
  };
  writeFileSync(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
  return file;
}
