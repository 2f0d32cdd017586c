import type { VolumeSession } from '../frontend/session.js';

/**
 * A relocation step (UKAI add_location + synchronize, or remove_location): `add` a location and
 * copy it in-sync, `sync` an existing location's stale blocks (resync), `remove` a location.
 * Idempotent, because the controller repeats steps after restarts: adding a location the volume
 * has syncs it, removing one it lacks is done.
 */
export interface RelocateBody { action: 'add' | 'sync' | 'remove'; nodeId: string }
export interface RelocateProgress { done: number; total: number; copied: number }
export interface RelocateResult { blocks: number; copied: number }

/** Runs the step on the session holding the volume's write lease. */
export async function relocationStep(session: VolumeSession, b: RelocateBody, onProgress: (p: RelocateProgress) => void): Promise<RelocateResult> {
  const has = session.locations().some((l) => l.nodeId === b.nodeId);
  if (b.action === 'remove') {
    if (has) await session.removeLocation(b.nodeId);
    return { blocks: 0, copied: 0 };
  }
  return b.action === 'add' && !has ? session.addLocation(b.nodeId, onProgress) : session.sync(b.nodeId, onProgress);
}
