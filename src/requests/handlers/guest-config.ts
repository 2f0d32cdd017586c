import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentClient } from '../../agent/client.js';
import { invalidState } from '../../core/errors.js';
import { toWire } from '../../metadata/wire.js';
import type { InitMethod } from '../../services/guest-config.js';
import { vmMetadata } from '../../services/guest-metadata.js';
import { activeOn } from '../../services/requests.js';
import type { Db } from '../../state/db.js';
import type { Handler, RequestContext } from '../engine.js';

export interface GuestConfigDeps {
  db: Db; agents: AgentClient;
  /** How long a running guest has to confirm a generation before the request fails (the configuration stays stored). */
  confirmTimeoutMs: number;
  pollMs?: number;
}

export const INIT_METHODS: InitMethod[] = [
  'setIpAddress', 'unsetIpAddress', 'setNetwork', 'setPassword', 'setSshKey', 'setIptables', 'setSshdConfig', 'writeFile',
];

/** A VM in these states has (or is about to have) a guest that polls the metadata service. */
const GUEST_UP = new Set(['starting', 'running', 'migrating']);

/**
 * The init requests (setSshKey …): the generation is already recorded (services/init.ts). A running
 * guest gets it from its agent's metadata service — pushed there, so its long-poll answers at once —
 * and the request succeeds when the guest confirms that generation or a later one. A stopped VM, one
 * with another request queued behind this one, or a guest that has run longer than the confirmation
 * window without ever asking kumo's guest-agent endpoints (a cloud-init guest) keeps the generation
 * for its next boot or poll: the request succeeds saying "stored".
 */
export function guestConfigHandlers(d: GuestConfigDeps): Record<string, Handler> {
  const status = async (vmId: string, generation: number) => (await d.db.k.selectFrom('vm_config_generations').select('status')
    .where('vm_id', '=', vmId).where('generation', '=', generation).executeTakeFirst())?.status;
  const store = (vmId: string, generation: number) => d.db.k.updateTable('vm_config_generations').set({ status: 'stored' })
    .where('vm_id', '=', vmId).where('generation', '<=', generation).where('status', '=', 'pending').execute();

  async function deliver(ctx: RequestContext): Promise<unknown> {
    const vmId = ctx.req.resource_id;
    const generation = Number(ctx.params.generation);
    const deadline = Date.now() + d.confirmTimeoutMs;
    let pushedTo: string | null = null;
    for (;;) {
      const now = await status(vmId, generation);
      if (now === undefined) throw invalidState(`VM ${vmId} no longer has configuration generation ${generation} (deallocated?)`);
      if (now === 'applied') return { generation, applied: true };
      const vm = await d.db.k.selectFrom('vms').select(['status', 'host_id']).where('id', '=', vmId).executeTakeFirstOrThrow();
      if (!GUEST_UP.has(vm.status) || !vm.host_id) {
        await store(vmId, generation);
        return { generation, applied: false, stored: true, message: `the VM is ${vm.status}: generation ${generation} is stored and applied at its next boot` };
      }
      if ((await activeOn(d.db.k, vmId, d.db)).some((r) => r.id !== ctx.req.id)) {
        await store(vmId, generation);
        return { generation, applied: false, stored: true, message: `another request waits on the VM: generation ${generation} is stored; the guest applies it at its next poll or boot` };
      }
      if (pushedTo !== vm.host_id) {
        const host = await d.db.k.selectFrom('hosts').selectAll().where('id', '=', vm.host_id).executeTakeFirstOrThrow();
        const md = await vmMetadata(d.db, vmId);
        try {
          const guest = md ? await d.agents.putMetadata(host, vmId, toWire(md)) : null;
          pushedTo = vm.host_id;
          if (guest && !guest.polled && guest.servedMs !== null && guest.servedMs > d.confirmTimeoutMs) {
            await store(vmId, generation);
            return { generation, applied: false, stored: true, message: `the guest has run ${Math.round(guest.servedMs / 1000)} s without asking for kumo's guest-agent configuration `
              + `(cloud-init reads it at boot): generation ${generation} is stored and applied at its next boot` };
          }
          await ctx.progress(50, `generation ${generation} handed to host ${host.name}; waiting for the guest to apply it`);
        } catch (e) {
          ctx.log.warn({ err: (e as Error).message }, 'could not hand the configuration to the agent; the guest gets it at its next poll');
        }
      }
      if (Date.now() > deadline) {
        await store(vmId, generation);
        throw invalidState(`the guest did not confirm generation ${generation} within ${Math.round(d.confirmTimeoutMs / 1000)} s ` +
          '(no kumo guest agent or cloud-init still booting?); it stays stored and is applied at the next boot');
      }
      if (ctx.signal.aborted) return null;
      await sleep(d.pollMs ?? 250);
    }
  }
  return Object.fromEntries(INIT_METHODS.map((m) => [m, deliver]));
}
