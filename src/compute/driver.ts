import type { MigrationSupport } from './migration.js';

/**
 * What a hypervisor driver offers the agent. `qemu/` (compute issue) and `sim/` implement the
 * same interface, as Nova's virt drivers do; every operation is idempotent because the controller
 * repeats operations after timeouts and restarts.
 */
export interface DiskSpec { slot: number; volumeId: string; sizeGiB: number }
export interface NicSpec { slot: number; networkId: string; mac: string }
export interface NicDevice { slot: number; mac: string; device: string }

/** Direct kernel boot from files of the image the system volume was restored from (names within
 * that image); absent means firmware (BIOS) boot from the system disk. */
export interface BootSpec { imageId: string; kernel: string; initrd?: string; append?: string }

/** What the controller asks for: names, sizes and ids only, no paths on the agent's host. */
export interface VmSpec {
  vmId: string; name: string; vcpus: number; memoryMiB: number;
  architecture: 'x86_64' | 'i686'; resourceType: 'best-effort' | 'guaranteed' | 'dedicated';
  disks: DiskSpec[]; nics: NicSpec[]; boot?: BootSpec;
}

/** Where a disk's data is on this host: a kumo volume's NBD export (the agent's frontend), or a raw file (driver tests, tools). */
export type DiskSource = { kind: 'file'; path: string } | { kind: 'nbd'; socket: string; export: string };

/** A VmSpec resolved by the agent into paths on this host, which is what drivers start. */
export interface LaunchSpec extends VmSpec {
  disks: (DiskSpec & { source: DiskSource })[];
  kernel?: { path: string; initrd?: string; append: string };
  /** A NoCloud `cidata` seed ISO, attached read-only as a CD-ROM (the operator's choice: `kumo agent --nocloud-seed`). */
  seed?: string;
}

/** A live serial console: output as it arrives, input to the guest's serial port. */
export interface ConsoleStream {
  onData(listener: (chunk: Buffer) => void): () => void;
  write(data: Buffer): void;
  close(): void;
}

export type VmPower = 'running' | 'stopped';

export interface VmReport { vmId: string; power: VmPower }

export interface StopOptions { force: boolean; timeoutMs: number }

export interface ComputeDriver {
  readonly name: string;
  /** Live migration (compute/migration.ts); absent where the driver cannot migrate. */
  readonly migration?: MigrationSupport;
  /** How guests are accelerated ("kvm", "tcg", "sim"), shown in the host's info. */
  readonly accel: string;
  /** Returns once the VM runs; a VM that already runs is left alone. */
  start(spec: LaunchSpec): Promise<void>;
  /** ACPI shutdown, forced after `timeoutMs`, or at once with `force`; a stopped VM is left alone. */
  stop(vmId: string, opts: StopOptions): Promise<void>;
  reset(vmId: string): Promise<void>;
  list(): Promise<VmReport[]>;
  /** The last `bytes` of the VM's serial console output, kept across agent restarts. */
  consoleTail(vmId: string, bytes: number): Promise<Buffer>;
  /** Attaches to the VM's serial console while it runs. */
  console(vmId: string): Promise<ConsoleStream>;
  /** Lets go of every VM without stopping it (agent shutdown: guests outlive their agent). */
  close(): Promise<void>;
  /** The host-side devices (taps) of a running VM's NICs; absent where NICs have no host device (sim). */
  nicDevices?(vmId: string): Promise<NicDevice[]>;
  /** Called when a VM stops without being asked (guest shutdown, crash). */
  onExit(listener: (vmId: string, reason: 'shutdown' | 'crash') => void): void;
}

export class DriverError extends Error {
  constructor(readonly vmId: string, message: string) { super(message); this.name = 'DriverError'; }
}
