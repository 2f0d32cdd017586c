import { readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DriverError, type ComputeDriver, type ConsoleStream, type LaunchSpec, type StopOptions, type VmReport, type VmSpec } from '../driver.js';
import { SimMigration } from './migration.js';

export interface SimTimings {
  bootMs: number; shutdownMs: number;
  /** Wall milliseconds per predicted migration millisecond: 1 (default) takes the model's time, 0 is instant. */
  migrationScale?: number;
}

/**
 * A hypervisor that only keeps books: boot and shutdown take simulated time, and its VM table is
 * kept in a file so a restarted agent finds its "running" VMs, as it finds QEMU processes.
 * For scale simulation and fast tests, never a fallback for QEMU.
 */
export class SimDriver implements ComputeDriver {
  readonly name = 'sim';
  readonly accel = 'sim';
  private readonly vms = new Map<string, VmSpec>();
  private readonly listeners: ((vmId: string, reason: 'shutdown' | 'crash') => void)[] = [];
  private readonly consoles = new Map<string, string>();
  readonly migration: SimMigration;

  constructor(private readonly timings: SimTimings, private readonly stateFile: string | null = null) {
    this.migration = new SimMigration({
      running: (vmId) => this.vms.get(vmId),
      adopt: (spec) => {
        this.vms.set(spec.vmId, spec);
        this.save();
        this.print(spec.vmId, `KUMO-RESUME vm=${spec.vmId} (simulated, migrated in)\n`);
      },
    }, timings.migrationScale ?? 1);
    if (stateFile) {
      try {
        for (const spec of JSON.parse(readFileSync(stateFile, 'utf8')) as VmSpec[]) this.vms.set(spec.vmId, spec);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  }

  async start(spec: LaunchSpec): Promise<void> {
    if (this.vms.has(spec.vmId)) return;
    await sleep(this.timings.bootMs);
    this.vms.set(spec.vmId, spec);
    this.save();
    this.print(spec.vmId, `KUMO-BOOT vm=${spec.vmId} (simulated)\n`);
  }

  async stop(vmId: string, opts: StopOptions): Promise<void> {
    this.migration.discardIncoming(vmId);
    if (!this.vms.has(vmId)) return;
    if (!opts.force) await sleep(Math.min(this.timings.shutdownMs, opts.timeoutMs));
    this.vms.delete(vmId);
    this.save();
  }

  async reset(vmId: string): Promise<void> {
    if (!this.vms.has(vmId)) throw new DriverError(vmId, `${vmId} is not running on this host`);
    await sleep(this.timings.bootMs);
    this.print(vmId, `KUMO-BOOT vm=${vmId} (simulated, after reset)\n`);
  }

  async consoleTail(vmId: string, bytes: number): Promise<Buffer> {
    return Buffer.from(this.consoles.get(vmId) ?? '').subarray(-bytes);
  }

  /** A simulated guest echoes what is typed, so console plumbing can be tested without QEMU. */
  async console(vmId: string): Promise<ConsoleStream> {
    if (!this.vms.has(vmId)) throw new DriverError(vmId, `${vmId} is not running on this host`);
    const listeners = new Set<(chunk: Buffer) => void>();
    return {
      onData: (l) => { listeners.add(l); return () => listeners.delete(l); },
      write: (data) => { this.print(vmId, data.toString()); listeners.forEach((l) => l(data)); },
      close: () => listeners.clear(),
    };
  }

  private print(vmId: string, text: string): void {
    this.consoles.set(vmId, ((this.consoles.get(vmId) ?? '') + text).slice(-(1 << 20)));
  }

  async list(): Promise<VmReport[]> {
    return [...this.vms.keys()].map((vmId) => ({ vmId, power: 'running' as const }));
  }

  async close(): Promise<void> {}

  onExit(listener: (vmId: string, reason: 'shutdown' | 'crash') => void): void { this.listeners.push(listener); }

  /** How fast the guest dirties its memory, which sets how long its migrations take (default 0). */
  setDirtyRate(vmId: string, bytesPerSecond: number): void { this.migration.setDirtyRate(vmId, bytesPerSecond); }

  /** Simulates a guest that powers itself off, for tests of the exit path. */
  guestShutdown(vmId: string): void {
    if (this.vms.delete(vmId)) { this.save(); this.listeners.forEach((l) => l(vmId, 'shutdown')); }
  }

  private save(): void {
    if (!this.stateFile) return;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    writeFileSync(`${this.stateFile}.tmp`, JSON.stringify([...this.vms.values()]));
    renameSync(`${this.stateFile}.tmp`, this.stateFile);
  }
}
