/**
 * Where a new block object's copies go (pure). Rules, in order:
 *  1. only nodes that are up, have room for the object, and do not already hold a copy;
 *  2. never two copies on one node;
 *  3. the first copy in the preferred zone (the VM's) when such a node qualifies, so the VM writes
 *     and reads near by; otherwise anywhere;
 *  4. among the qualifying nodes, the one with the most free bytes (spreading data by free space),
 *     ties broken by node id, so the same input always gives the same answer.
 * The copies after the first are chosen by free space alone, whatever their zone: the operator
 * moves data across zones on purpose (relocation), placement does not guess.
 */

export interface NodeCandidate {
  nodeId: string;
  zone: string;
  /** Free bytes on the node's data filesystem, as the node last reported. */
  freeBytes: number;
  up: boolean;
}

export interface PlacementRequest {
  /** Copies wanted, ≥ 1. */
  replicas: number;
  candidates: readonly NodeCandidate[];
  /** The zone of the VM (or host) that uses the volume. */
  preferredZone?: string;
  /** Room each copy needs (the block size); nodes with less free space are skipped. Default 0. */
  objectBytes?: number;
  /** Nodes that must not be chosen, e.g. those already holding a copy (relocation, re-replication). */
  exclude?: readonly string[];
}

export type PlacementResult = { ok: true; nodeIds: string[] } | { ok: false; reason: string };

const byFreeThenId = (a: NodeCandidate, b: NodeCandidate): number =>
  b.freeBytes - a.freeBytes || (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0);

const names = (xs: readonly NodeCandidate[]): string => xs.map((c) => c.nodeId).sort().join(', ');

/** Chooses `replicas` distinct nodes for one new object, or says why it cannot. */
export function placeReplicas(req: PlacementRequest): PlacementResult {
  if (!Number.isSafeInteger(req.replicas) || req.replicas < 1) return { ok: false, reason: `replicas must be a positive integer, got ${req.replicas}` };
  const need = req.objectBytes ?? 0;
  const excluded = new Set(req.exclude ?? []);
  // One entry per node id: a duplicate in the input must not yield two copies on one node.
  const seen = new Set<string>();
  const unique = req.candidates.filter((c) => !seen.has(c.nodeId) && (seen.add(c.nodeId), true));
  const down = unique.filter((c) => !c.up && !excluded.has(c.nodeId));
  const full = unique.filter((c) => c.up && !excluded.has(c.nodeId) && !(c.freeBytes >= need));
  const usable = unique.filter((c) => c.up && !excluded.has(c.nodeId) && c.freeBytes >= need).sort(byFreeThenId);
  if (usable.length < req.replicas) {
    const parts = [`${req.replicas} ${req.replicas === 1 ? 'replica needs' : 'replicas need'} ${req.replicas} storage ${req.replicas === 1 ? 'node' : 'nodes'} up${need ? ` with ${need} bytes free` : ''}`,
      usable.length === 0 ? 'none is' : `only ${usable.length} ${usable.length === 1 ? 'is' : 'are'} (${names(usable)})`];
    if (down.length) parts.push(`down: ${names(down)}`);
    if (full.length) parts.push(`full: ${names(full)}`);
    const held = unique.filter((c) => excluded.has(c.nodeId));
    if (held.length) parts.push(`excluded: ${names(held)}`);
    return { ok: false, reason: parts.join('; ') };
  }
  const first = usable.find((c) => req.preferredZone !== undefined && c.zone === req.preferredZone) ?? usable[0];
  const rest = usable.filter((c) => c !== first).slice(0, req.replicas - 1);
  return { ok: true, nodeIds: [first.nodeId, ...rest.map((c) => c.nodeId)] };
}

/**
 * Places `count` new objects one after another, charging each chosen node `objectBytes` so a large
 * allocation spreads over the nodes as their free space evens out. All or nothing.
 */
export function placeObjects(count: number, req: PlacementRequest): { ok: true; placements: string[][] } | { ok: false; reason: string } {
  const free = new Map(req.candidates.map((c) => [c.nodeId, c.freeBytes]));
  const placements: string[][] = [];
  for (let i = 0; i < count; i++) {
    const r = placeReplicas({ ...req, candidates: req.candidates.map((c) => ({ ...c, freeBytes: free.get(c.nodeId)! })) });
    if (!r.ok) return { ok: false, reason: `object ${i + 1} of ${count}: ${r.reason}` };
    for (const id of r.nodeIds) free.set(id, free.get(id)! - (req.objectBytes ?? 0));
    placements.push(r.nodeIds);
  }
  return { ok: true, placements };
}
