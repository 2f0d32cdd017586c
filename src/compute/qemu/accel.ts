/**
 * Which accelerator QEMU gets. KVM needs both a /dev/kvm this process can open read-write *and* a
 * CPU that advertises hardware virtualization (vmx on Intel, svm on AMD) in /proc/cpuinfo: some
 * nested or emulated environments expose /dev/kvm without the flags, and KVM guests there hang at
 * boot instead of failing. Anything short of both means TCG (pure emulation, ~10-50x slower).
 */
import { closeSync, constants, openSync, readFileSync } from 'node:fs';

export type Accel = 'kvm' | 'tcg';

/** Whether the `flags` lines of /proc/cpuinfo name vmx or svm (every CPU lists the same flags). */
export function cpuHasVirtualization(cpuinfo: string): boolean {
  for (const m of cpuinfo.matchAll(/^flags\s*:(.*)$/gm)) {
    const flags = m[1].trim().split(/\s+/);
    if (flags.includes('vmx') || flags.includes('svm')) return true;
  }
  return false;
}

/** The pure decision, for tests: KVM only when both the device and the CPU flags say so. */
export function chooseAccel(cpuinfo: string, kvmOpens: boolean): Accel {
  return kvmOpens && cpuHasVirtualization(cpuinfo) ? 'kvm' : 'tcg';
}

export function kvmDeviceOpens(path = '/dev/kvm'): boolean {
  try {
    closeSync(openSync(path, constants.O_RDWR));
    return true;
  } catch {
    return false;
  }
}

export interface AccelDetection { accel: Accel; reason: string }

/** Looks at this host; synchronous so a driver knows its accelerator from construction on. */
export function detectAccel(paths: { kvm?: string; cpuinfo?: string } = {}): AccelDetection {
  const opens = kvmDeviceOpens(paths.kvm);
  let cpuinfo = '';
  try {
    cpuinfo = readFileSync(paths.cpuinfo ?? '/proc/cpuinfo', 'utf8');
  } catch {
    // no cpuinfo: no flags, so TCG
  }
  const flags = cpuHasVirtualization(cpuinfo);
  const accel = chooseAccel(cpuinfo, opens);
  const reason = accel === 'kvm'
    ? '/dev/kvm opens and the CPU flags show vmx/svm'
    : `${opens ? '/dev/kvm opens' : '/dev/kvm does not open read-write'} and the CPU flags ${flags ? 'show' : 'do not show'} vmx/svm`;
  return { accel, reason };
}
