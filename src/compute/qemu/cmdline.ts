/**
 * The QEMU command line of a VM: a pure function of its LaunchSpec, its run-directory paths and the
 * accelerator, so it is tested by looking at the argv alone.
 *
 * Choices worth knowing:
 * - `-no-user-config -nodefaults`: only the devices listed here exist (no default NIC, VGA,
 *   floppy, CD-ROM, monitor), so what a guest sees does not change with the host's QEMU config.
 * - `-daemonize` + `-pidfile`: QEMU outlives the agent; a restarted agent finds it by the pidfile
 *   (QEMU also locks it, so a second QEMU on the same run dir refuses to start). `-D qemu.log`
 *   keeps QEMU's stderr on that file after daemonizing (otherwise it goes to /dev/null).
 * - the serial port is a unix socket chardev with `logfile=console.log,logappend=on`: QEMU itself
 *   writes every byte of console output to the log, also while no agent is connected.
 * - `-display none` and no `-vnc`: nothing listens on an address.
 * - disks are virtio-blk in slot order, slot 0 first in the boot order (bootindex starts at 1: a
 *   direct kernel boot's option ROM takes bootindex 0). Local files: host page cache on
 *   (`cache.direct=off`) with guest flushes honoured (`cache.no-flush=off`), i.e. "writeback":
 *   fast, and as safe as the guest asks. NBD exports: `cache.direct=on`, the block server below
 *   owns caching and durability.
 * - no `-no-shutdown`: a guest that powers off ends its QEMU, which the driver sees as an exit.
 * - i686 guests run on the same x86_64 binary with a 32-bit CPU model (`qemu32`).
 * - a live migration's destination gets `-incoming defer -S`: it waits for migrate-incoming, and
 *   once the state has arrived it stays paused until `cont`, so the guest runs (and writes to its
 *   disks) only after the controller has handed it its volumes.
 */
import { join } from 'node:path';
import { DriverError, type DiskSource, type LaunchSpec } from '../driver.js';
import type { Accel } from './accel.js';
import { MAX_TAP_SLOT, tapName, type TapVariant } from './taps.js';

export interface VmPaths {
  dir: string;
  spec: string;
  qmp: string;
  serial: string;
  consoleLog: string;
  pidfile: string;
  /** QEMU's messages (`-D`): its start errors and, once daemonized, its stderr; QEMU truncates it at start */
  qemuLog: string;
  /** what the daemonizing command printed on its own stderr */
  startLog: string;
  /** the VM's part in a live migration (qemu/migration.ts), absent when it has none */
  migration: string;
}

export function vmPaths(runDir: string, vmId: string): VmPaths {
  const dir = join(runDir, vmId);
  return {
    dir,
    spec: join(dir, 'spec.json'),
    qmp: join(dir, 'qmp.sock'),
    serial: join(dir, 'serial.sock'),
    consoleLog: join(dir, 'console.log'),
    pidfile: join(dir, 'qemu.pid'),
    qemuLog: join(dir, 'qemu.log'),
    startLog: join(dir, 'qemu-start.log'),
    migration: join(dir, 'migration.json'),
  };
}

export interface CmdlineOptions {
  /** `q35` (default) or `pc` */
  machine?: 'q35' | 'pc';
  /** which names the VM's taps have (taps.ts), default 0 */
  tapVariant?: TapVariant;
  /** a live migration's destination: waits for migrate-incoming, stays paused after it */
  incoming?: boolean;
}

/** QEMU's option syntax: a comma inside a value is written twice. */
export const escapeOpt = (value: string): string => value.replace(/,/g, ',,');

const VM_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** Throws a DriverError naming the first thing in the spec QEMU could not be given. */
export function validateLaunchSpec(spec: LaunchSpec): void {
  const bad = (msg: string): never => { throw new DriverError(spec.vmId, `invalid launch spec for ${spec.vmId}: ${msg}`); };
  if (!VM_ID.test(spec.vmId)) bad(`vmId ${JSON.stringify(spec.vmId)} is not a plain name`);
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > 255) bad(`vcpus ${spec.vcpus} is outside 1..255`);
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 16) bad(`memoryMiB ${spec.memoryMiB} is below 16`);
  if (spec.architecture !== 'x86_64' && spec.architecture !== 'i686') bad(`architecture ${String(spec.architecture)} is not x86_64 or i686`);
  if (spec.architecture === 'i686' && spec.memoryMiB > 4096) bad('an i686 guest cannot use more than 4096 MiB');
  const slots = new Set<number>();
  for (const d of spec.disks) {
    if (!Number.isInteger(d.slot) || d.slot < 0) bad(`disk slot ${d.slot} is not a non-negative integer`);
    if (slots.has(d.slot)) bad(`disk slot ${d.slot} appears twice`);
    slots.add(d.slot);
    if (d.source?.kind !== 'file' && d.source?.kind !== 'nbd') bad(`disk slot ${d.slot} has no file or nbd source`);
  }
  slots.clear();
  for (const n of spec.nics) {
    if (slots.has(n.slot)) bad(`NIC slot ${n.slot} appears twice`);
    slots.add(n.slot);
    if (!MAC.test(n.mac)) bad(`NIC slot ${n.slot} has a malformed MAC ${JSON.stringify(n.mac)}`);
    if (!Number.isInteger(n.slot) || n.slot < 0 || n.slot > MAX_TAP_SLOT) bad(`NIC slot ${n.slot} is outside 0..${MAX_TAP_SLOT}`);
  }
}

function cpuModel(spec: LaunchSpec, accel: Accel): string {
  if (spec.architecture === 'i686') return 'qemu32';
  return accel === 'kvm' ? 'host' : 'max';
}

/** Seconds QEMU holds a volume's I/O while the agent's NBD server is away. */
export const NBD_RECONNECT_DELAY_S = 60;

function blockdev(nodeName: string, source: DiskSource): string {
  if (source.kind === 'file') {
    return [
      'driver=raw', `node-name=${nodeName}`, 'discard=unmap',
      'file.driver=file', `file.filename=${escapeOpt(source.path)}`,
      'file.cache.direct=off', 'file.cache.no-flush=off', 'file.discard=unmap',
    ].join(',');
  }
  return [
    'driver=nbd', `node-name=${nodeName}`, 'discard=unmap',
    'server.type=unix', `server.path=${escapeOpt(source.socket)}`, `export=${escapeOpt(source.export)}`,
    // A restarting agent takes its NBD socket down for a moment: the guest's I/O waits and is
    // replayed on reconnect instead of failing.
    `reconnect-delay=${NBD_RECONNECT_DELAY_S}`,
    'cache.direct=on', 'cache.no-flush=off',
  ].join(',');
}

/**
 * A fixed CHS geometry, so QEMU does not read sector 0 to guess one when the device is created: a
 * live migration's destination exports its volumes before their leases arrive and answers no I/O
 * until the switch-over, and a guess would block its QEMU from starting.
 */
export function geometry(sizeGiB: number): string {
  const cyls = Math.max(1, Math.min(65535, Math.floor((sizeGiB * 1024 ** 3) / (16 * 63 * 512))));
  return `cyls=${cyls},heads=16,secs=63`;
}

/** With the kernel's console on the serial port whatever the caller's append says. */
export function kernelAppend(append: string): string {
  return /(^|\s)console=ttyS0(\s|,|$)/.test(append) ? append : `console=ttyS0 ${append}`.trim();
}

export function buildArgv(spec: LaunchSpec, paths: VmPaths, accel: Accel, opts: CmdlineOptions = {}): string[] {
  validateLaunchSpec(spec);
  const argv: string[] = [
    '-name', `guest=${escapeOpt(spec.vmId)},debug-threads=on`,
    '-no-user-config', '-nodefaults',
    '-machine', `${opts.machine ?? 'q35'},accel=${accel}`,
    '-cpu', cpuModel(spec, accel),
    '-smp', String(spec.vcpus),
    '-m', String(spec.memoryMiB),
    // cloud-init recognises OpenStack by the product name; the guest reads its VM id from serial.
    '-smbios', `type=1,manufacturer=kumo,product=OpenStack Nova,serial=${escapeOpt(spec.vmId)}`,
    '-display', 'none',
    '-msg', 'timestamp=on',
    '-pidfile', paths.pidfile,
    '-daemonize',
    '-D', paths.qemuLog,
    '-qmp', `unix:${escapeOpt(paths.qmp)},server=on,wait=off`,
    '-chardev', `socket,id=serial0,path=${escapeOpt(paths.serial)},server=on,wait=off,logfile=${escapeOpt(paths.consoleLog)},logappend=on`,
    '-serial', 'chardev:serial0',
  ];
  const disks = [...spec.disks].sort((a, b) => a.slot - b.slot);
  disks.forEach((d, i) => {
    const node = `disk${d.slot}`;
    argv.push('-blockdev', blockdev(node, d.source));
    argv.push('-device', `virtio-blk-pci,id=vd${d.slot},drive=${node},bootindex=${i + 1},${geometry(d.sizeGiB)}`);
  });
  if (spec.seed) {
    argv.push('-blockdev', `driver=raw,node-name=seed,read-only=on,file.driver=file,file.filename=${escapeOpt(spec.seed)}`);
    argv.push('-device', 'ide-cd,id=seed,drive=seed');
  }
  if (spec.kernel) {
    argv.push('-kernel', spec.kernel.path);
    if (spec.kernel.initrd) argv.push('-initrd', spec.kernel.initrd);
    argv.push('-append', kernelAppend(spec.kernel.append));
  } else {
    argv.push('-boot', 'strict=on');
  }
  for (const n of [...spec.nics].sort((a, b) => a.slot - b.slot)) {
    argv.push('-netdev', `tap,id=net${n.slot},ifname=${tapName(spec.vmId, n.slot, opts.tapVariant)},script=no,downscript=no`);
    argv.push('-device', `virtio-net-pci,id=nic${n.slot},netdev=net${n.slot},mac=${n.mac.toLowerCase()}`);
  }
  if (opts.incoming) argv.push('-incoming', 'defer', '-S');
  return argv;
}
