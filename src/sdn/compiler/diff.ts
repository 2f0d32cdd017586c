/**
 * diffDevice: the minimal change taking a device from `before` to `after` (null: absent), and
 * applyChange, its inverse, which tests (and the sim driver) use to check that a change holds
 * everything: apply(before, diff(before, after)) equals after, and applying it again changes nothing.
 */
import { EDGE_BRIDGE, GATEWAY_BRIDGE, GATEWAY_VXLAN, HOST_BRIDGE, type DeviceConfig, type EdgeConfig, type GatewayConfig, type HostConfig, type PortConfig } from '../types.js';
import type { ChangeOp, DeviceChange, Downlink, EdgeChange, GatewayChange, HostChange, VlanAddress, VlanMap } from './change.js';
import { byNumber, byText, sortedDelta, sortedUnique } from './order.js';

export function diffDevice(before: DeviceConfig | null, after: DeviceConfig | null): DeviceChange {
  const kind = (after ?? before)?.kind;
  if (!kind) throw new Error('diffDevice: before and after are both null');
  if (before && after && before.kind !== after.kind) throw new Error(`diffDevice: a ${before.kind} cannot become a ${after.kind}`);
  const b = before?.config ?? null, a = after?.config ?? null;
  const id = (c: DeviceConfig['config']): string => ('hostId' in c ? c.hostId : 'edgeId' in c ? c.edgeId : c.zoneId);
  if (b && a && id(b) !== id(a)) throw new Error(`diffDevice: ${kind} ${id(b)} compared with ${kind} ${id(a)}`);
  const op: ChangeOp = b === null ? 'create' : a === null ? 'delete' : 'update';
  switch (kind) {
    case 'host': return diffHost(b as HostConfig | null, a as HostConfig | null, op);
    case 'edge': return diffEdge(b as EdgeConfig | null, a as EdgeConfig | null, op);
    case 'gateway': return diffGateway(b as GatewayConfig | null, a as GatewayConfig | null, op);
  }
}

/** A scalar field of the change: set on create, omitted on delete and when it did not change. */
function scalar<T>(b: T | undefined, a: T | undefined, op: ChangeOp): T | undefined {
  if (op === 'delete') return undefined;
  return op === 'create' || b !== a ? a : undefined;
}

const sameList = <T>(x: readonly T[], y: readonly T[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
const samePort = (x: PortConfig, y: PortConfig): boolean => x.vlan === y.vlan && x.mac === y.mac && sameList(x.ips, y.ips);

function diffHost(b: HostConfig | null, a: HostConfig | null, op: ChangeOp): HostChange {
  const id = (a ?? b)!.hostId;
  const was = new Map((b?.ports ?? []).map((p) => [p.port, p]));
  const now = new Map((a?.ports ?? []).map((p) => [p.port, p]));
  const ports: HostChange['ports'] = { added: [], removed: [], changed: [] };
  for (const p of a?.ports ?? []) {
    const old = was.get(p.port);
    if (!old) ports.added.push(p);
    else if (!samePort(old, p)) ports.changed.push(p);
  }
  for (const p of b?.ports ?? []) if (!now.has(p.port)) ports.removed.push(p.port);
  const c: HostChange = { kind: 'host', id, op, trunk: sortedDelta(b?.trunk ?? [], a?.trunk ?? []), ports };
  const uplink = scalar(b?.uplink, a?.uplink, op);
  if (uplink !== undefined) c.uplink = uplink;
  return c;
}

function diffEdge(b: EdgeConfig | null, a: EdgeConfig | null, op: ChangeOp): EdgeChange {
  const id = (a ?? b)!.edgeId;
  const was = new Map((b?.downlinks ?? []).map((d) => [d.port, d]));
  const now = new Map((a?.downlinks ?? []).map((d) => [d.port, d]));
  const downlinks: EdgeChange['downlinks'] = { added: [], removed: [], changed: [] };
  for (const d of a?.downlinks ?? []) {
    const old = was.get(d.port);
    if (!old) downlinks.added.push(d);
    else if (old.hostId !== d.hostId || !sameList(old.vlans, d.vlans)) downlinks.changed.push({ port: d.port, hostId: d.hostId, vlans: sortedDelta(old.vlans, d.vlans) });
  }
  for (const d of b?.downlinks ?? []) if (!now.has(d.port)) downlinks.removed.push(d.port);
  const uplink: EdgeChange['uplink'] = { vlans: sortedDelta(b?.uplink.vlans ?? [], a?.uplink.vlans ?? []) };
  const port = scalar(b?.uplink.port, a?.uplink.port, op);
  if (port !== undefined) uplink.port = port;
  return { kind: 'edge', id, op, uplink, downlinks };
}

const mapKey = (m: VlanMap): string => `${m.vlan}:${m.vni}`;
const addressKey = (m: VlanAddress): string => `${m.vlan}:${m.address}`;

/** Entries of two lists compared whole (a VLAN whose VNI changed is one removed and one added). */
function keyedDelta<T>(b: readonly T[], a: readonly T[], key: (x: T) => string): { added: T[]; removed: T[] } {
  const was = new Set(b.map(key)), now = new Set(a.map(key));
  return { added: a.filter((x) => !was.has(key(x))), removed: b.filter((x) => !now.has(key(x))) };
}

function diffGateway(b: GatewayConfig | null, a: GatewayConfig | null, op: ChangeOp): GatewayChange {
  const c: GatewayChange = {
    kind: 'gateway', id: (a ?? b)!.zoneId, op,
    downlink: sortedDelta(b?.downlink.vlans ?? [], a?.downlink.vlans ?? []),
    maps: keyedDelta(b?.maps ?? [], a?.maps ?? [], mapKey),
    flood: sortedDelta(b?.flood ?? [], a?.flood ?? []),
    addresses: keyedDelta(b?.addresses ?? [], a?.addresses ?? [], addressKey),
  };
  const ip = scalar(b?.underlayIp, a?.underlayIp, op), port = scalar(b?.downlink.port, a?.downlink.port, op);
  if (ip !== undefined) c.underlayIp = ip;
  if (port !== undefined) c.downlinkPort = port;
  return c;
}

/* ---------------------------------------------------------------- applying a change */

function applySet<T extends string | number>(xs: readonly T[], d: { added: readonly T[]; removed: readonly T[] }): T[] {
  const gone = new Set(d.removed);
  return sortedUnique([...xs.filter((x) => !gone.has(x)), ...d.added]);
}

function applyKeyed<T>(xs: readonly T[], d: { added: readonly T[]; removed: readonly T[] }, key: (x: T) => string, order: (a: T, b: T) => number): T[] {
  const m = new Map(xs.map((x) => [key(x), x]));
  for (const x of d.removed) m.delete(key(x));
  for (const x of d.added) m.set(key(x), x);
  return [...m.values()].sort(order);
}

const byVlanThen = <T extends { vlan: number }>(rest: (a: T, b: T) => number) => (a: T, b: T): number => byNumber(a.vlan, b.vlan) || rest(a, b);

/** The device after `change`; null when it deletes the device. Throws on an update of a missing device. */
export function applyChange(before: DeviceConfig | null, change: DeviceChange): DeviceConfig | null {
  if (change.op === 'delete') return null;
  if (before && before.kind !== change.kind) throw new Error(`applyChange: a ${change.kind} change on a ${before.kind}`);
  if (!before && change.op === 'update') throw new Error(`applyChange: update of ${change.kind} ${change.id}, which does not exist`);
  switch (change.kind) {
    case 'host': {
      const b = before?.config as HostConfig | undefined;
      const ports = new Map((b?.ports ?? []).map((p) => [p.port, p]));
      for (const name of change.ports.removed) ports.delete(name);
      for (const p of [...change.ports.added, ...change.ports.changed]) ports.set(p.port, p);
      const config: HostConfig = {
        hostId: change.id, bridge: HOST_BRIDGE, uplink: change.uplink ?? b!.uplink, trunk: applySet(b?.trunk ?? [], change.trunk),
        ports: [...ports.values()].sort((x, y) => byText(x.port, y.port)),
      };
      return { kind: 'host', config };
    }
    case 'edge': {
      const b = before?.config as EdgeConfig | undefined;
      const downs = new Map<string, Downlink>((b?.downlinks ?? []).map((d) => [d.port, d]));
      for (const port of change.downlinks.removed) downs.delete(port);
      for (const d of change.downlinks.added) downs.set(d.port, d);
      for (const d of change.downlinks.changed) {
        downs.set(d.port, { port: d.port, hostId: d.hostId, vlans: applySet(downs.get(d.port)?.vlans ?? [], d.vlans) });
      }
      const config: EdgeConfig = {
        edgeId: change.id, bridge: EDGE_BRIDGE,
        uplink: { port: change.uplink.port ?? b!.uplink.port, vlans: applySet(b?.uplink.vlans ?? [], change.uplink.vlans) },
        downlinks: [...downs.values()].sort((x, y) => byText(x.port, y.port)),
      };
      return { kind: 'edge', config };
    }
    case 'gateway': {
      const b = before?.config as GatewayConfig | undefined;
      const config: GatewayConfig = {
        zoneId: change.id, bridge: GATEWAY_BRIDGE, vxlan: GATEWAY_VXLAN, underlayIp: change.underlayIp ?? b!.underlayIp,
        downlink: { port: change.downlinkPort ?? b!.downlink.port, vlans: applySet(b?.downlink.vlans ?? [], change.downlink) },
        maps: applyKeyed(b?.maps ?? [], change.maps, mapKey, byVlanThen((x, y) => byNumber(x.vni, y.vni))),
        flood: applySet(b?.flood ?? [], change.flood),
        addresses: applyKeyed(b?.addresses ?? [], change.addresses, addressKey, byVlanThen((x, y) => byText(x.address, y.address))),
      };
      return { kind: 'gateway', config };
    }
  }
}
