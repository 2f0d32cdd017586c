/**
 * What an SDN device driver offers the agent (DESIGN.md §2, §7): `linux/` programs the kernel's
 * bridges, VLANs, VXLAN and nftables; `sim/` records configs for scale runs and unit tests. Both
 * are convergent: apply() makes the device match the config exactly (adding what is missing and
 * removing what should not be there) and touches nothing it does not own, so the controller may
 * repeat any apply after a timeout or a restart. Applying the same config twice changes nothing
 * the second time.
 */
import type { DeviceConfig } from './types.js';

export type DeviceKind = DeviceConfig['kind'];
export type DeviceOf<K extends DeviceKind> = Extract<DeviceConfig, { kind: K }>;

/** The id a device is known by: its host, edge or zone. */
export function deviceId(device: DeviceConfig): string {
  switch (device.kind) {
    case 'host': return device.config.hostId;
    case 'edge': return device.config.edgeId;
    case 'gateway': return device.config.zoneId;
  }
}

export interface ApplyReport {
  kind: DeviceKind;
  id: string;
  /** How many changes were made; 0 when the device already matched the config. */
  changes: number;
  /** Changes by the tool that made them (the sim driver counts everything under `sim`). */
  counts: { ip: number; bridge: number; nft: number; sim: number };
  /** The commands run (batch lines; nft changes one per line), for logs and tests. */
  commands: string[];
}

export interface SdnDriver {
  readonly name: 'linux' | 'sim';
  apply(device: DeviceConfig): Promise<ApplyReport>;
  /** The device's config as read back from the device; null when it has none (no bridge). */
  read<K extends DeviceKind>(kind: K, id: string): Promise<DeviceOf<K> | null>;
  /** Takes the device's kumo config away (bridge, VXLAN device, rules); ports it did not create stay. */
  remove(kind: DeviceKind, id: string): Promise<ApplyReport>;
}

/** A config the driver cannot apply (bad names, missing uplink), or a kernel that lacks a feature. */
export class SdnDriverError extends Error {
  constructor(readonly driver: string, message: string) { super(`${driver} SDN driver: ${message}`); this.name = 'SdnDriverError'; }
}
