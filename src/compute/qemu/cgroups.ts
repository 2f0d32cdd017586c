/**
 * CPU policy by resource type, enforced with cgroups. kumo does not pin vCPUs (yet): it gives each
 * VM its own cpu cgroup, `kumo/<vmId>`, and sets
 *
 *   resource type          weight per vCPU   cgroup v2 cpu.weight     cgroup v1 cpu.shares   quota
 *   best-effort                   50          50 × vcpus  (1..10000)   512 × vcpus            vcpus CPUs
 *   guaranteed / dedicated       500          500 × vcpus (1..10000)   5120 × vcpus           none
 *
 * (v1 shares = weight × 1024 / 100, the kernel's own v1↔v2 mapping, clamped to 2..262144.)
 *
 * So under contention a guaranteed vCPU gets ten times the CPU time of a best-effort vCPU: the
 * scheduler never overcommits guaranteed vCPUs, so they effectively get whole CPUs, while
 * best-effort VMs share what is left in proportion to their size. Best-effort VMs are also capped
 * at their vCPU count (cpu.max / cfs_quota_us = vcpus × 100 ms per 100 ms period) so QEMU's own
 * threads (I/O, TCG) cannot take more than the VM's size; guaranteed VMs get no cap, so their
 * emulator threads never throttle their vCPUs. Dedicated hosts hold one tenant, whose VMs get the
 * guaranteed weights. v2's cpu.weight tops out at 10000, so past 20 vCPUs a guaranteed VM's weight
 * stops growing (a 10× edge over best-effort holds for VMs up to that size).
 *
 * Layout: cgroup v2 (when /sys/fs/cgroup/cgroup.controllers exists) uses /sys/fs/cgroup/kumo/<vmId>
 * with the cpu controller enabled in the parents' cgroup.subtree_control; v1 uses the cpu
 * hierarchy, /sys/fs/cgroup/cpu/kumo/<vmId>. The QEMU pid is written to cgroup.procs, which moves
 * all of its threads. Where cgroups are missing or not writable (no root, a container), the driver
 * logs one clear line and VMs run without the policy.
 */
import { existsSync } from 'node:fs';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LaunchSpec } from '../driver.js';

export const CFS_PERIOD_US = 100_000;
const REMOVE_RETRIES = 60;
const REMOVE_RETRY_MS = 500;
export const WEIGHT_PER_VCPU = { 'best-effort': 50, guaranteed: 500, dedicated: 500 } as const;

export interface CpuPolicy {
  /** cgroup v2 cpu.weight, 1..10000 */
  weight: number;
  /** cgroup v1 cpu.shares, 2..262144 */
  shares: number;
  /** CPU time per period in µs, or null for no cap */
  quotaUs: number | null;
  periodUs: number;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, Math.round(v)));

export function cpuPolicy(resourceType: LaunchSpec['resourceType'], vcpus: number): CpuPolicy {
  const perVcpu = WEIGHT_PER_VCPU[resourceType] ?? WEIGHT_PER_VCPU['best-effort'];
  const raw = perVcpu * vcpus;
  return {
    weight: clamp(raw, 1, 10_000),
    shares: clamp((raw * 1024) / 100, 2, 262_144),
    quotaUs: resourceType === 'best-effort' ? vcpus * CFS_PERIOD_US : null,
    periodUs: CFS_PERIOD_US,
  };
}

/** The files (relative to the VM's cgroup directory) and values that carry the policy. */
export function policyFiles(version: 'v1' | 'v2', p: CpuPolicy): [string, string][] {
  if (version === 'v2') return [['cpu.weight', String(p.weight)], ['cpu.max', `${p.quotaUs ?? 'max'} ${p.periodUs}`]];
  return [['cpu.shares', String(p.shares)], ['cpu.cfs_period_us', String(p.periodUs)], ['cpu.cfs_quota_us', String(p.quotaUs ?? -1)]];
}

export interface CgroupLog { info(obj: object, msg: string): void; warn(obj: object, msg: string): void }

export class CpuCgroups {
  private warned = false;
  private readonly retries = new Map<string, NodeJS.Timeout>();
  readonly version: 'v1' | 'v2' | null;

  /** `root` is the cgroup filesystem mount, /sys/fs/cgroup; tests point it at a scratch tree. */
  constructor(private readonly log: CgroupLog, private readonly root = '/sys/fs/cgroup') {
    if (existsSync(join(root, 'cgroup.controllers'))) this.version = 'v2';
    else if (existsSync(join(root, 'cpu'))) this.version = 'v1';
    else this.version = null;
  }

  private parent(): string {
    return this.version === 'v2' ? join(this.root, 'kumo') : join(this.root, 'cpu', 'kumo');
  }

  dirOf(vmId: string): string {
    return join(this.parent(), vmId);
  }

  /** Puts the QEMU pid into the VM's cgroup with its policy; never throws (the VM runs anyway). */
  async apply(vmId: string, pid: number, policy: CpuPolicy): Promise<boolean> {
    if (!this.version) {
      this.warnOnce({ root: this.root }, 'no cgroup cpu controller found: VMs run without the CPU policy of their resource type');
      return false;
    }
    const dir = this.dirOf(vmId);
    this.cancelRetry(vmId);
    try {
      if (this.version === 'v2') {
        await writeFile(join(this.root, 'cgroup.subtree_control'), '+cpu');
        await mkdir(this.parent(), { recursive: true });
        await writeFile(join(this.parent(), 'cgroup.subtree_control'), '+cpu');
      }
      await mkdir(dir, { recursive: true });
      for (const [file, value] of policyFiles(this.version, policy)) await writeFile(join(dir, file), value);
      await writeFile(join(dir, 'cgroup.procs'), String(pid));
      return true;
    } catch (e) {
      this.warnOnce({ dir, error: (e as Error).message },
        `cannot apply the cgroup ${this.version} CPU policy (${(e as Error).message}): VMs run without the CPU policy of their resource type`);
      return false;
    }
  }

  /**
   * Removes the VM's cgroup once its QEMU is gone. The kernel refuses (EBUSY) while it holds a
   * process, and a dead QEMU stays in it as a zombie until init reaps it, so a refused removal is
   * retried in the background for a while (cancelled if the VM starts again meanwhile).
   */
  async remove(vmId: string): Promise<void> {
    if (!this.version) return;
    this.cancelRetry(vmId);
    if ((await this.tryRmdir(vmId)) !== 'busy') return;
    let left = REMOVE_RETRIES;
    const retry = () => {
      this.retries.delete(vmId);
      void this.tryRmdir(vmId).then((r) => {
        if (r === 'busy' && --left > 0) this.retries.set(vmId, setTimeout(retry, REMOVE_RETRY_MS).unref());
      });
    };
    this.retries.set(vmId, setTimeout(retry, REMOVE_RETRY_MS).unref());
  }

  private async tryRmdir(vmId: string): Promise<'done' | 'busy'> {
    try {
      await rmdir(this.dirOf(vmId));
      return 'done';
    } catch (e) {
      // absent (never made, already removed): done; busy: a process, maybe a zombie, is still in it
      return (e as NodeJS.ErrnoException).code === 'EBUSY' ? 'busy' : 'done';
    }
  }

  private cancelRetry(vmId: string): void {
    const t = this.retries.get(vmId);
    if (t) clearTimeout(t);
    this.retries.delete(vmId);
  }

  private warnOnce(obj: object, msg: string): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn(obj, msg);
  }
}
