/**
 * Which VLANs must exist: the rule "VLANs follow members" (DESIGN.md §5, issue 5) as a pure function,
 * so the service only diffs the rows against it.
 *
 *  - a private network holds a VLAN in every zone where one of its NICs is placed (its VM has a host);
 *  - in the gateway zone it holds one while it has a placed NIC in any zone, because the gateway zone
 *    carries every network's gateway address and backbone link even where no VM of it runs.
 */

/** A network with at least one placed NIC in a zone. */
export interface ZoneMember { networkId: string; zoneId: string }

export interface VlanRow { networkId: string; zoneId: string; vlan: number }

const key = (zoneId: string, networkId: string) => `${zoneId}\u0000${networkId}`;

/** zoneId → the networks that need a VLAN there. */
export function neededVlans(members: Iterable<ZoneMember>, gatewayZone: string | null): Map<string, Set<string>> {
  const need = new Map<string, Set<string>>();
  const add = (zoneId: string, networkId: string) => {
    let s = need.get(zoneId);
    if (!s) need.set(zoneId, s = new Set());
    s.add(networkId);
  };
  for (const m of members) {
    add(m.zoneId, m.networkId);
    if (gatewayZone !== null) add(gatewayZone, m.networkId);
  }
  return need;
}

/** Rows that no rule keeps: their VLANs go back to their zones' pools. */
export function unneededRows<R extends { networkId: string; zoneId: string }>(rows: Iterable<R>, need: Map<string, Set<string>>): R[] {
  const out: R[] = [];
  for (const r of rows) if (!need.get(r.zoneId)?.has(r.networkId)) out.push(r);
  return out;
}

/** (zone, network) pairs that need a VLAN and have none yet, zones and networks in sorted order. */
export function missingRows(rows: Iterable<{ networkId: string; zoneId: string }>, need: Map<string, Set<string>>): ZoneMember[] {
  const have = new Set<string>();
  for (const r of rows) have.add(key(r.zoneId, r.networkId));
  const out: ZoneMember[] = [];
  for (const zoneId of [...need.keys()].sort()) {
    for (const networkId of [...need.get(zoneId)!].sort()) if (!have.has(key(zoneId, networkId))) out.push({ zoneId, networkId });
  }
  return out;
}
