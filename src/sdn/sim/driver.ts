/**
 * The `sim` SDN driver (DESIGN.md §2): records the last config applied to each device and how many
 * times apply() was called, for scale runs and unit tests. It has the linux driver's contract:
 * read() returns exactly what was applied, and re-applying an identical config reports 0 changes.
 * A change is one leaf of the config that appeared or went away (array elements count as whole
 * values, so a moved port or a dropped VLAN is one removal plus, where it went, one addition).
 */
import { deviceId, type ApplyReport, type DeviceKind, type DeviceOf, type SdnDriver } from '../driver.js';
import type { DeviceConfig } from '../types.js';

/** The config flattened into a set of `path=value` leaves; arrays are sets of their elements. */
function leaves(value: unknown, path: string, out: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const v of value) out.add(`${path}[]=${JSON.stringify(v)}`);
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) leaves(v, path ? `${path}.${k}` : k, out);
  else out.add(`${path}=${JSON.stringify(value)}`);
  return out;
}

export function configChanges(before: DeviceConfig | null, after: DeviceConfig | null): string[] {
  const a = before ? leaves(before.config, '', new Set()) : new Set<string>();
  const b = after ? leaves(after.config, '', new Set()) : new Set<string>();
  return [...[...a].filter((x) => !b.has(x)).map((x) => `- ${x}`), ...[...b].filter((x) => !a.has(x)).map((x) => `+ ${x}`)];
}

export class SimSdnDriver implements SdnDriver {
  readonly name = 'sim' as const;
  private readonly devices = new Map<string, DeviceConfig>();
  private readonly applies = new Map<string, number>();
  /** apply() calls over all devices, changed or not. */
  applyCount = 0;

  private static key(kind: DeviceKind, id: string): string { return `${kind}/${id}`; }

  async apply(device: DeviceConfig): Promise<ApplyReport> {
    const id = deviceId(device);
    const key = SimSdnDriver.key(device.kind, id);
    const copy = structuredClone(device);
    const commands = configChanges(this.devices.get(key) ?? null, copy);
    this.devices.set(key, copy);
    this.applies.set(key, (this.applies.get(key) ?? 0) + 1);
    this.applyCount++;
    return report(device.kind, id, commands);
  }

  async read<K extends DeviceKind>(kind: K, id: string): Promise<DeviceOf<K> | null> {
    const d = this.devices.get(SimSdnDriver.key(kind, id));
    return d ? (structuredClone(d) as DeviceOf<K>) : null;
  }

  async remove(kind: DeviceKind, id: string): Promise<ApplyReport> {
    const key = SimSdnDriver.key(kind, id);
    const commands = configChanges(this.devices.get(key) ?? null, null);
    this.devices.delete(key);
    return report(kind, id, commands);
  }

  /** How many times apply() was called for one device. */
  appliesTo(kind: DeviceKind, id: string): number { return this.applies.get(SimSdnDriver.key(kind, id)) ?? 0; }

  /** Every device that holds a config, as `kind/id`, sorted. */
  devicesHeld(): string[] { return [...this.devices.keys()].sort(); }
}

function report(kind: DeviceKind, id: string, commands: string[]): ApplyReport {
  return { kind, id, changes: commands.length, counts: { ip: 0, bridge: 0, nft: 0, sim: commands.length }, commands };
}
