import { PassThrough } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ComputeDriver, LaunchSpec, VmSpec } from '../compute/driver.js';
import { MigrationError, type MigrationSupport } from '../compute/migration.js';
import type { AgentStorage } from './storage.js';
import {
  AGENT_PATHS, type DirtyRateBody, type DirtyRateReply, type HandoverBody, type IncomingBody, type IncomingReply,
  type MigrateBody, type MigrateEvent, type ResumeOutgoingBody,
} from './protocol.js';

export interface MigrationRouteDeps {
  driver: (hostId: string) => ComputeDriver;
  storage?: AgentStorage;
  /** The address incoming migrations listen on (`kumo agent --migration-address`). */
  migrationHost: string;
  /** Without storage every disk is pathless (the sim driver). */
  pathless: (spec: VmSpec) => Promise<LaunchSpec>;
  /** A VM that now runs here gets its metadata service (its DHCP lease and address go on). */
  arrived: (hostId: string, vmId: string) => Promise<void>;
  /** Adds what the agent puts on every launch (the NoCloud seed) to the incoming one. */
  withSeed: (launch: LaunchSpec) => Promise<LaunchSpec>;
  log: Logger;
}

const fail = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });
const HOST_ID = /^host-[0-9a-f]{12}$/;

/**
 * The agent's half of live migration (DESIGN.md §8): one route per step the controller runs. The
 * outgoing migration answers with an NDJSON stream of progress; if that stream breaks (the
 * controller died or gave up), the migration is cancelled and the VM runs on here, so a resumed
 * request always finds the VM at the source or, after the hand-over, at the destination.
 */
export async function migrationRoutes(app: FastifyInstance, d: MigrationRouteDeps): Promise<void> {
  const outgoing = new Map<string, AbortController>();
  const migration = (hostId: string): MigrationSupport => {
    const drv = d.driver(hostId);
    if (!drv.migration) throw fail(501, `the ${drv.name} driver cannot live-migrate`);
    return drv.migration;
  };
  type P = { Params: { hostId: string; vmId: string } };

  app.post<P & { Body: IncomingBody }>(AGENT_PATHS.incoming(':hostId', ':vmId'), async (req): Promise<IncomingReply> => {
    const { hostId, vmId } = req.params;
    const m = migration(hostId);
    const spec = { ...req.body.spec, vmId };
    d.log.info({ vmId, hostId }, 'preparing an incoming migration');
    const launch = await d.withSeed(d.storage ? await d.storage.launchIncoming(hostId, spec) : await d.pathless(spec));
    try {
      return await m.prepareIncoming(launch, d.migrationHost);
    } catch (e) {
      if (!(await d.driver(hostId).list()).some((v) => v.vmId === vmId)) await d.storage?.frontend.detach(vmId);
      throw e;
    }
  });

  app.post<P & { Body: DirtyRateBody }>(AGENT_PATHS.dirtyRate(':hostId', ':vmId'), async (req): Promise<DirtyRateReply> => {
    const seconds = req.body?.seconds;
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 60) throw fail(400, 'dirty-rate needs {seconds: 1..60}');
    return { bytesPerSecond: await migration(req.params.hostId).dirtyRate(req.params.vmId, seconds) };
  });

  app.post<P & { Body: MigrateBody }>(AGENT_PATHS.migrate(':hostId', ':vmId'), async (req, reply) => {
    const { hostId, vmId } = req.params;
    const m = migration(hostId);
    const b = req.body;
    if (!b || typeof b.uri !== 'string' || typeof b.params !== 'object') throw fail(400, 'migrate needs {uri, params}');
    if (outgoing.has(vmId)) throw fail(409, `${vmId} is already migrating`);
    const abort = new AbortController();
    outgoing.set(vmId, abort);
    d.log.info({ vmId, uri: b.uri, ...b.params }, 'migrating a VM out');
    const out = new PassThrough();
    const line = (e: MigrateEvent) => { if (!out.writableEnded) out.write(`${JSON.stringify(e)}\n`); };
    // The request's own 'close' fires once its body is read; the response's tells a dropped controller.
    reply.raw.on('close', () => { if (!out.writableEnded) abort.abort(); });
    m.migrateOut(vmId, b.uri, b.params, (progress) => line({ progress }), abort.signal).then((result) => {
      d.log.info({ vmId, ...result }, 'migration completed at the source');
      line({ result });
    }, (e: Error) => {
      d.log.warn({ vmId, err: e.message }, 'outgoing migration ended without completing; the VM runs here');
      line({ error: e.message, kind: e instanceof MigrationError ? e.kind : 'failed' });
    }).finally(() => { outgoing.delete(vmId); out.end(); });
    return reply.type('application/x-ndjson').send(out);
  });

  app.post<P>(AGENT_PATHS.migrateCancel(':hostId', ':vmId'), async (req) => {
    outgoing.get(req.params.vmId)?.abort();
    return {};
  });

  app.post<P & { Body: HandoverBody }>(AGENT_PATHS.handover(':hostId', ':vmId'), async (req) => {
    const to = req.body?.toHostId;
    if (typeof to !== 'string' || !HOST_ID.test(to)) throw fail(400, 'handover needs {toHostId: host-…}');
    d.log.info({ vmId: req.params.vmId, to }, 'handing the VM\'s volumes over');
    await d.storage?.frontend.handOver(req.params.vmId, to);
    return {};
  });

  app.post<P>(AGENT_PATHS.resumeIncoming(':hostId', ':vmId'), async (req) => {
    const { hostId, vmId } = req.params;
    const m = migration(hostId);
    await d.storage?.frontend.activate(vmId);
    await m.resumeIncoming(vmId);
    d.log.info({ vmId, hostId }, 'migrated VM resumed here');
    await d.arrived(hostId, vmId);
    return {};
  });

  app.post<P & { Body: ResumeOutgoingBody }>(AGENT_PATHS.resumeOutgoing(':hostId', ':vmId'), async (req) => {
    const { hostId, vmId } = req.params;
    const volumeIds = req.body?.volumeIds;
    if (!Array.isArray(volumeIds) || !volumeIds.every((v) => typeof v === 'string')) throw fail(400, 'resume-outgoing needs {volumeIds: [...]}');
    const m = migration(hostId);
    await d.storage?.frontend.attach(hostId, vmId, volumeIds);
    await m.resumeOutgoing(vmId);
    d.log.warn({ vmId, hostId }, 'migration rolled back after completion; the VM runs here again');
    return {};
  });
}
