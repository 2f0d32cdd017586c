/** Shown in full in the message; the rest are counted (a bad store can yield thousands). */
const LISTED = 20;

/**
 * Topology and Placement disagree (a NIC whose network has no VLAN in its zone, two networks on
 * one VLAN in a zone, …). Every problem found is listed, so one run shows all of them, and
 * `problems` keeps them for callers that report them one by one.
 */
export class SdnCompileError extends Error {
  constructor(readonly problems: readonly string[]) {
    const shown = problems.slice(0, LISTED).join('; ');
    const more = problems.length > LISTED ? `; … and ${problems.length - LISTED} more` : '';
    super(`SDN config does not compile (${problems.length} problem${problems.length === 1 ? '' : 's'}): ${shown}${more}`);
    this.name = 'SdnCompileError';
  }
}

/** Throws SdnCompileError when `problems` is not empty. */
export function raiseIfAny(problems: readonly string[]): void {
  if (problems.length > 0) throw new SdnCompileError(problems);
}
