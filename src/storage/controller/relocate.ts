import { agentFault, type AgentClient } from '../../agent/client.js';
import { invalidState } from '../../core/errors.js';
import type { Services } from '../../services/index.js';
import { relocationStep, type RelocateBody, type RelocateProgress, type RelocateResult } from '../relocation/step.js';
import type { ControllerStorage } from './sessions.js';

export interface RelocateDeps { s: Services; agents: AgentClient; storage: ControllerStorage }

/**
 * One relocation step (add / sync / remove a location) done by whoever holds the volume's write
 * lease, since only the lease holder may write and every write must reach a copy being built: the
 * agent of the host the VM runs on, or — when nobody holds it — the controller itself. A volume
 * held by `kumo vol export` is refused: that process is the operator's, not ours to drive.
 */
export async function relocate(d: RelocateDeps, volumeId: string, body: RelocateBody,
  onProgress: (p: RelocateProgress) => Promise<void> | void): Promise<RelocateResult> {
  const lease = await d.s.blockMaps.leaseOf(volumeId);
  const live = lease !== null && Date.parse(lease.expiresAt) > Date.now() && lease.holder !== d.storage.holder;
  if (live && lease.holder.startsWith('host-')) {
    const host = await d.s.db.k.selectFrom('hosts').selectAll().where('id', '=', lease.holder).executeTakeFirst();
    if (host) {
      try {
        return await d.agents.relocate(host, volumeId, body, onProgress);
      } catch (e) {
        throw agentFault(`${body.action} location ${body.nodeId} of ${volumeId}`, host, e);
      }
    }
  } else if (live) {
    throw invalidState(`${volumeId} is held by ${lease.holder}; relocate it when that frontend has closed it`);
  }
  return d.storage.withSession(volumeId, (session) => relocationStep(session, body, (p) => void onProgress(p)));
}
