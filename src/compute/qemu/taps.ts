/**
 * The tap devices of a VM's NICs. They are made before QEMU starts (QEMU opens them by name with
 * `script=no`, so it needs no privileges of its own for networking) and deleted after the VM is
 * gone. Here they only exist and are up; the SDN driver attaches them to bridges.
 *
 * Names are derived from the VM id and the NIC slot alone, so any agent (a restarted one, or the
 * SDN driver) finds them again without state: `kt` + 12 hex digits + the slot in base 36, which is
 * 15 characters, the most IFNAMSIZ allows. The 12 hex digits are the id's own for kumo's
 * `vm-<12 hex>` ids (so an operator can tell which VM a tap belongs to), a hash of it otherwise.
 *
 * Variant 1 (`ku…`) exists for live migration: in kumo's lab and tests the source and destination
 * "hosts" share one kernel, and the incoming QEMU needs its taps while the source's still exist.
 * The variant a VM's QEMU uses is saved with it (spec.json); everything else uses variant 0.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Linux's IFNAMSIZ is 16 including the terminating NUL. */
export const MAX_IFNAME = 15;
export const MAX_TAP_SLOT = 35;

export type TapVariant = 0 | 1;
const PREFIX: Record<TapVariant, string> = { 0: 'kt', 1: 'ku' };

export function tapName(vmId: string, slot: number, variant: TapVariant = 0): string {
  if (!Number.isInteger(slot) || slot < 0 || slot > MAX_TAP_SLOT) throw new RangeError(`NIC slot ${slot} is outside 0..${MAX_TAP_SLOT}`);
  if (variant !== 0 && variant !== 1) throw new RangeError(`tap variant ${String(variant)} is not 0 or 1`);
  const own = /^vm-([0-9a-f]{12})$/.exec(vmId);
  const hex = own ? own[1] : createHash('sha256').update(vmId).digest('hex').slice(0, 12);
  return `${PREFIX[variant]}${hex}${slot.toString(36)}`;
}

export interface TapLog { warn(obj: object, msg: string): void }

async function ip(args: string[]): Promise<{ ok: true } | { ok: false; stderr: string }> {
  try {
    await run('ip', args, { timeout: 10_000 });
    return { ok: true };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { ok: false, stderr: (err.stderr || err.message).trim() };
  }
}

export async function tapExists(name: string): Promise<boolean> {
  return (await ip(['link', 'show', 'dev', name])).ok;
}

/** Creates the tap if it is missing and sets it up; safe to repeat. */
export async function ensureTap(name: string): Promise<void> {
  if (!(await tapExists(name))) {
    const add = await ip(['tuntap', 'add', 'dev', name, 'mode', 'tap']);
    // Lost a race with another caller: fine if the device is there now.
    if (!add.ok && !(await tapExists(name))) throw new Error(`cannot create tap ${name}: ${add.stderr}`);
  }
  const up = await ip(['link', 'set', 'dev', name, 'up']);
  if (!up.ok) throw new Error(`cannot set tap ${name} up: ${up.stderr}`);
}

/** Deletes the tap if it exists; a missing one is not an error. */
export async function deleteTap(name: string, log?: TapLog): Promise<void> {
  if (!(await tapExists(name))) return;
  const del = await ip(['tuntap', 'del', 'dev', name, 'mode', 'tap']);
  if (!del.ok && (await tapExists(name))) log?.warn({ tap: name, error: del.stderr }, 'cannot delete tap device');
}
