/**
 * What a driver must do to take one device from one config to another: a typed change set, keyed
 * the way the datapath is (ports by name, VLANs by number). Every part is a set operation (add,
 * remove, replace), so applying a change is idempotent: a driver may replay it after a timeout and
 * a device already in the target state is left as it is.
 */
import type { EdgeConfig, GatewayConfig, PortConfig } from '../types.js';

export interface Delta<T> { added: T[]; removed: T[] }

/** create: the device appears (everything is in `added`); delete: it goes (everything in `removed`). */
export type ChangeOp = 'create' | 'update' | 'delete';

export interface HostChange {
  kind: 'host';
  id: string;
  op: ChangeOp;
  /** Present when the uplink port is set or renamed; the whole trunk then moves to it. */
  uplink?: string;
  trunk: Delta<number>;
  /** `removed` names ports; `changed` holds the new config of a port whose VLAN, MAC or IPs changed. */
  ports: { added: PortConfig[]; removed: string[]; changed: PortConfig[] };
}

export type Downlink = EdgeConfig['downlinks'][number];

export interface EdgeChange {
  kind: 'edge';
  id: string;
  op: ChangeOp;
  uplink: { port?: string; vlans: Delta<number> };
  /** `changed`: same port, its VLAN list (or the host behind it) changed. */
  downlinks: { added: Downlink[]; removed: string[]; changed: { port: string; hostId: string; vlans: Delta<number> }[] };
}

export type VlanMap = GatewayConfig['maps'][number];
export type VlanAddress = GatewayConfig['addresses'][number];

export interface GatewayChange {
  kind: 'gateway';
  id: string;
  op: ChangeOp;
  underlayIp?: string;
  downlinkPort?: string;
  downlink: Delta<number>;
  maps: Delta<VlanMap>;
  flood: Delta<string>;
  addresses: Delta<VlanAddress>;
}

export type DeviceChange = HostChange | EdgeChange | GatewayChange;

const noDelta = <T>(d: Delta<T>): boolean => d.added.length === 0 && d.removed.length === 0;

/** True when the change asks nothing of the driver. */
export function isEmptyChange(c: DeviceChange): boolean {
  if (c.op !== 'update') return false;
  switch (c.kind) {
    case 'host':
      return c.uplink === undefined && noDelta(c.trunk) && c.ports.added.length === 0 && c.ports.removed.length === 0 && c.ports.changed.length === 0;
    case 'edge':
      return c.uplink.port === undefined && noDelta(c.uplink.vlans) && c.downlinks.added.length === 0
        && c.downlinks.removed.length === 0 && c.downlinks.changed.length === 0;
    case 'gateway':
      return c.underlayIp === undefined && c.downlinkPort === undefined && noDelta(c.downlink) && noDelta(c.maps)
        && noDelta(c.flood) && noDelta(c.addresses);
  }
}

export const emptyDelta = <T>(): Delta<T> => ({ added: [], removed: [] });
