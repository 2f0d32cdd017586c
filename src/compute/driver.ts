/**
 * What a hypervisor driver offers the agent. `qemu/` (compute issue) and `sim/` implement the
 * same interface, as Nova's virt drivers do; every operation is idempotent because the controller
 * repeats operations after timeouts and restarts.
 */
export interface DiskSpec { slot: number; volumeId: string; sizeGiB: number }
export interface NicSpec { slot: number; networkId: string; mac: string }

export interface VmSpec {
  vmId: string; name: string; vcpus: number; memoryMiB: number;
  architecture: 'x86_64' | 'i686'; resourceType: 'best-effort' | 'guaranteed' | 'dedicated';
  disks: DiskSpec[]; nics: NicSpec[];
}

export type VmPower = 'running' | 'stopped';

export interface VmReport { vmId: string; power: VmPower }

export interface StopOptions { force: boolean; timeoutMs: number }

export interface ComputeDriver {
  readonly name: string;
  /** How guests are accelerated ("kvm", "tcg", "sim"), shown in the host's info. */
  readonly accel: string;
  /** Returns once the VM runs; a VM that already runs is left alone. */
  start(spec: VmSpec): Promise<void>;
  /** ACPI shutdown, forced after `timeoutMs`, or at once with `force`; a stopped VM is left alone. */
  stop(vmId: string, opts: StopOptions): Promise<void>;
  reset(vmId: string): Promise<void>;
  list(): Promise<VmReport[]>;
  /** Called when a VM stops without being asked (guest shutdown, crash). */
  onExit(listener: (vmId: string, reason: 'shutdown' | 'crash') => void): void;
}

export class DriverError extends Error {
  constructor(readonly vmId: string, message: string) { super(message); this.name = 'DriverError'; }
}
