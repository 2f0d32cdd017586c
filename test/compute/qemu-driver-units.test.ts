/**
 * The QEMU driver's pure parts, without QEMU or root: accelerator choice, the command line, tap
 * names, the cgroup CPU policy (against a scratch directory laid out like a cgroup fs), console
 * log trimming, exit reasons and the liveness check.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DriverError, type LaunchSpec } from '../../src/compute/driver.js';
import { chooseAccel, cpuHasVirtualization, detectAccel } from '../../src/compute/qemu/accel.js';
import { CpuCgroups, cpuPolicy, policyFiles } from '../../src/compute/qemu/cgroups.js';
import { buildArgv, escapeOpt, kernelAppend, vmPaths } from '../../src/compute/qemu/cmdline.js';
import { readTail, trimLog } from '../../src/compute/qemu/console.js';
import { findQemu, isQemuFor, procState, readPidfile } from '../../src/compute/qemu/process.js';
import { MAX_IFNAME, tapName } from '../../src/compute/qemu/taps.js';
import { exitReason } from '../../src/compute/qemu/watch.js';

const scratch = mkdtempSync(join(tmpdir(), 'kumo-qemu-units-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const INTEL = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae vmx smx est\n\nprocessor\t: 1\nflags\t\t: fpu vme de pse tsc msr pae vmx smx est\n';
const AMD = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc svm extapic\n';
const NONE = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae hypervisor lm\nvmx flags\t: (not a flags line)\n';

describe('accelerator choice', () => {
  it('KVM needs both an openable /dev/kvm and vmx or svm', () => {
    assert.equal(chooseAccel(INTEL, true), 'kvm');
    assert.equal(chooseAccel(AMD, true), 'kvm');
    assert.equal(chooseAccel(NONE, true), 'tcg', '/dev/kvm without the flags (this machine) must not pick KVM');
    assert.equal(chooseAccel(INTEL, false), 'tcg');
    assert.equal(chooseAccel('', false), 'tcg');
  });

  it('reads whole flag words only', () => {
    assert.equal(cpuHasVirtualization('flags\t: avx512vmxx svmx\n'), false);
    assert.equal(cpuHasVirtualization(NONE), false);
    assert.equal(cpuHasVirtualization(INTEL), true);
  });

  it('detects from given paths and says why', () => {
    const cpuinfo = join(scratch, 'cpuinfo');
    writeFileSync(cpuinfo, INTEL);
    const none = detectAccel({ kvm: join(scratch, 'no-such-kvm'), cpuinfo });
    assert.equal(none.accel, 'tcg');
    assert.match(none.reason, /does not open/);
    const dev = join(scratch, 'fake-kvm');
    writeFileSync(dev, '');
    assert.equal(detectAccel({ kvm: dev, cpuinfo }).accel, 'kvm');
    writeFileSync(cpuinfo, NONE);
    assert.deepEqual(detectAccel({ kvm: dev, cpuinfo }), { accel: 'tcg', reason: '/dev/kvm opens and the CPU flags do not show vmx/svm' });
  });
});

const base = (over: Partial<LaunchSpec> = {}): LaunchSpec => ({
  vmId: 'vm-0123456789ab', name: 'web 1', vcpus: 2, memoryMiB: 512, architecture: 'x86_64', resourceType: 'guaranteed',
  disks: [
    { slot: 1, volumeId: 'vol-2', sizeGiB: 10, source: { kind: 'nbd', socket: '/run/kumo/nbd.sock', export: 'vol-2' } },
    { slot: 0, volumeId: 'vol-1', sizeGiB: 20, source: { kind: 'file', path: '/var/lib/kumo/vol-1.raw' } },
  ],
  nics: [
    { slot: 1, networkId: 'net-b', mac: '52:54:00:00:00:02' },
    { slot: 0, networkId: 'net-a', mac: '52:54:00:AA:00:01' },
  ],
  ...over,
});

/** The values following each occurrence of `flag`. */
const values = (argv: string[], flag: string) => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]] : []));
const one = (argv: string[], flag: string) => {
  const v = values(argv, flag);
  assert.equal(v.length, 1, `${flag} once in ${argv.join(' ')}`);
  return v[0];
};

describe('QEMU command line', () => {
  const paths = vmPaths('/run/kumo/vms', 'vm-0123456789ab');

  it('sets machine, accelerator, CPU, vCPUs, memory, name and SMBIOS', () => {
    const argv = buildArgv(base(), paths, 'kvm');
    assert.equal(one(argv, '-machine'), 'q35,accel=kvm');
    assert.equal(one(argv, '-cpu'), 'host');
    assert.equal(one(argv, '-smp'), '2');
    assert.equal(one(argv, '-m'), '512');
    assert.equal(one(argv, '-name'), 'guest=vm-0123456789ab,debug-threads=on');
    assert.equal(one(argv, '-smbios'), 'type=1,manufacturer=kumo,product=OpenStack Nova,serial=vm-0123456789ab');
    const tcg = buildArgv(base(), paths, 'tcg', { machine: 'pc' });
    assert.equal(one(tcg, '-machine'), 'pc,accel=tcg');
    assert.equal(one(tcg, '-cpu'), 'max');
    assert.equal(one(buildArgv(base({ architecture: 'i686' }), paths, 'tcg'), '-cpu'), 'qemu32');
    assert.equal(one(buildArgv(base({ architecture: 'i686' }), paths, 'kvm'), '-cpu'), 'qemu32');
  });

  it('is self-contained, daemonized, with a pidfile, QMP and a logged serial socket, and no display', () => {
    const argv = buildArgv(base(), paths, 'tcg');
    assert.ok(argv.includes('-no-user-config') && argv.includes('-nodefaults'));
    assert.ok(argv.includes('-daemonize'));
    assert.ok(!argv.includes('-no-shutdown'), 'a guest poweroff must end QEMU');
    assert.equal(one(argv, '-pidfile'), '/run/kumo/vms/vm-0123456789ab/qemu.pid');
    assert.equal(one(argv, '-D'), '/run/kumo/vms/vm-0123456789ab/qemu.log');
    assert.equal(one(argv, '-qmp'), 'unix:/run/kumo/vms/vm-0123456789ab/qmp.sock,server=on,wait=off');
    assert.equal(one(argv, '-chardev'),
      'socket,id=serial0,path=/run/kumo/vms/vm-0123456789ab/serial.sock,server=on,wait=off,logfile=/run/kumo/vms/vm-0123456789ab/console.log,logappend=on');
    assert.equal(one(argv, '-serial'), 'chardev:serial0');
    assert.equal(one(argv, '-display'), 'none');
    assert.ok(!argv.includes('-vnc') && !argv.some((a) => /vnc|spice/.test(a)), 'nothing listens on an address');
  });

  it('attaches disks as virtio-blk in slot order, slot 0 first to boot, with per-source cache settings', () => {
    const argv = buildArgv(base(), paths, 'tcg');
    assert.deepEqual(values(argv, '-blockdev'), [
      'driver=raw,node-name=disk0,discard=unmap,file.driver=file,file.filename=/var/lib/kumo/vol-1.raw,file.cache.direct=off,file.cache.no-flush=off,file.discard=unmap',
      'driver=nbd,node-name=disk1,discard=unmap,server.type=unix,server.path=/run/kumo/nbd.sock,export=vol-2,reconnect-delay=60,cache.direct=on,cache.no-flush=off',
    ]);
    const devs = values(argv, '-device').filter((d) => d.startsWith('virtio-blk'));
    // A fixed geometry (20 and 10 GiB over 16 heads × 63 sectors): QEMU reads nothing from the disk to guess one.
    assert.deepEqual(devs, ['virtio-blk-pci,id=vd0,drive=disk0,bootindex=1,cyls=41610,heads=16,secs=63', 'virtio-blk-pci,id=vd1,drive=disk1,bootindex=2,cyls=20805,heads=16,secs=63']);
    assert.equal(one(argv, '-boot'), 'strict=on');
    assert.ok(argv.indexOf('-blockdev') < argv.indexOf(devs[0]));
  });

  it('boots a kernel directly with the console on ttyS0', () => {
    const argv = buildArgv(base({ kernel: { path: '/img/vmlinux', initrd: '/img/initrd.img', append: 'quiet' } }), paths, 'tcg');
    assert.equal(one(argv, '-kernel'), '/img/vmlinux');
    assert.equal(one(argv, '-initrd'), '/img/initrd.img');
    assert.equal(one(argv, '-append'), 'console=ttyS0 quiet');
    assert.ok(!argv.includes('-boot'));
    assert.equal(kernelAppend('console=ttyS0 quiet'), 'console=ttyS0 quiet');
    assert.equal(kernelAppend('root=/dev/vda console=ttyS0,115200'), 'root=/dev/vda console=ttyS0,115200');
    assert.equal(kernelAppend(''), 'console=ttyS0');
    const noInitrd = buildArgv(base({ kernel: { path: '/img/vmlinux', append: 'console=ttyS0' } }), paths, 'tcg');
    assert.deepEqual(values(noInitrd, '-initrd'), []);
  });

  it('attaches a NoCloud seed read-only as a CD-ROM, only when there is one', () => {
    const argv = buildArgv(base({ seed: '/var/lib/kumo/agent/metadata/seeds/vm-1.iso' }), paths, 'tcg');
    assert.ok(values(argv, '-blockdev').includes('driver=raw,node-name=seed,read-only=on,file.driver=file,file.filename=/var/lib/kumo/agent/metadata/seeds/vm-1.iso'));
    assert.ok(values(argv, '-device').includes('ide-cd,id=seed,drive=seed'));
    assert.ok(!buildArgv(base(), paths, 'tcg').some((a) => a.includes('seed')));
  });

  it('puts NICs on tap devices named after the VM and slot, with the VM MACs', () => {
    const argv = buildArgv(base(), paths, 'tcg');
    assert.deepEqual(values(argv, '-netdev'), [
      'tap,id=net0,ifname=kt0123456789ab0,script=no,downscript=no',
      'tap,id=net1,ifname=kt0123456789ab1,script=no,downscript=no',
    ]);
    assert.deepEqual(values(argv, '-device').filter((d) => d.startsWith('virtio-net')), [
      'virtio-net-pci,id=nic0,netdev=net0,mac=52:54:00:aa:00:01',
      'virtio-net-pci,id=nic1,netdev=net1,mac=52:54:00:00:00:02',
    ]);
    const none = buildArgv(base({ nics: [], disks: [] }), paths, 'tcg');
    assert.deepEqual(values(none, '-netdev'), []);
    assert.deepEqual(values(none, '-blockdev'), []);
  });

  it('starts a migration destination waiting and paused, on the tap names asked for', () => {
    const argv = buildArgv(base(), paths, 'tcg', { incoming: true, tapVariant: 1 });
    assert.equal(one(argv, '-incoming'), 'defer');
    assert.ok(argv.includes('-S'));
    assert.deepEqual(values(argv, '-netdev').map((n) => /ifname=(\w+)/.exec(n)![1]), ['ku0123456789ab0', 'ku0123456789ab1']);
    const plain = buildArgv(base(), paths, 'tcg');
    assert.ok(!plain.includes('-incoming') && !plain.includes('-S'));
  });

  it('escapes commas in paths', () => {
    assert.equal(escapeOpt('/a,b/c'), '/a,,b/c');
    const argv = buildArgv(base({ disks: [{ slot: 0, volumeId: 'v', sizeGiB: 1, source: { kind: 'file', path: '/x,y.raw' } }] }), vmPaths('/r,d', 'vm-0123456789ab'), 'tcg');
    assert.match(one(argv, '-blockdev'), /file\.filename=\/x,,y\.raw,/);
    assert.match(one(argv, '-qmp'), /^unix:\/r,,d\/vm-0123456789ab\/qmp\.sock,server=on/);
  });

  it('rejects specs QEMU could not be given', () => {
    const bad: Partial<LaunchSpec>[] = [
      { vcpus: 0 }, { vcpus: 1.5 }, { memoryMiB: 8 }, { vmId: '../etc' }, { vmId: 'a b' },
      { nics: [{ slot: 0, networkId: 'n', mac: 'zz:00:00:00:00:00' }] },
      { nics: [{ slot: 0, networkId: 'n', mac: '52:54:00:00:00:01' }, { slot: 0, networkId: 'n', mac: '52:54:00:00:00:02' }] },
      { nics: [{ slot: 36, networkId: 'n', mac: '52:54:00:00:00:01' }] },
      { disks: [{ slot: 0, volumeId: 'v', sizeGiB: 1, source: { kind: 'file', path: '/a' } }, { slot: 0, volumeId: 'w', sizeGiB: 1, source: { kind: 'file', path: '/b' } }] },
      { architecture: 'i686', memoryMiB: 8192 },
    ];
    for (const b of bad) assert.throws(() => buildArgv(base(b), paths, 'tcg'), DriverError, JSON.stringify(b));
  });
});

describe('tap names', () => {
  it('are deterministic, distinct per VM and slot, and fit IFNAMSIZ', () => {
    assert.equal(tapName('vm-0123456789ab', 0), 'kt0123456789ab0');
    assert.equal(tapName('vm-0123456789ab', 15), 'kt0123456789abf');
    const seen = new Set<string>();
    for (const id of ['vm-0123456789ab', 'vm-ffffffffffff', 'some-test-vm', 'some-test-vm-2']) {
      for (let slot = 0; slot <= 35; slot++) {
        const n = tapName(id, slot);
        assert.ok(n.length <= MAX_IFNAME, n);
        assert.match(n, /^kt[0-9a-f]{12}[0-9a-z]$/);
        assert.equal(tapName(id, slot), n);
        seen.add(n);
      }
    }
    assert.equal(seen.size, 4 * 36);
    assert.throws(() => tapName('vm-0123456789ab', 36), RangeError);
  });

  it('have a second variant for a migration destination on the same kernel', () => {
    assert.equal(tapName('vm-0123456789ab', 0, 0), tapName('vm-0123456789ab', 0));
    assert.equal(tapName('vm-0123456789ab', 15, 1), 'ku0123456789abf');
    assert.equal(tapName('some-test-vm', 35, 1).length, MAX_IFNAME);
    assert.throws(() => tapName('vm-0123456789ab', 0, 2 as 0), RangeError);
  });
});

describe('cgroup CPU policy', () => {
  it('weights guaranteed and dedicated vCPUs ten times best-effort and caps best-effort at its size', () => {
    assert.deepEqual(cpuPolicy('best-effort', 2), { weight: 100, shares: 1024, quotaUs: 200_000, periodUs: 100_000 });
    assert.deepEqual(cpuPolicy('guaranteed', 2), { weight: 1000, shares: 10_240, quotaUs: null, periodUs: 100_000 });
    assert.deepEqual(cpuPolicy('dedicated', 2), cpuPolicy('guaranteed', 2));
    assert.equal(cpuPolicy('guaranteed', 64).weight, 10_000, 'v2 weight is clamped');
    assert.equal(cpuPolicy('guaranteed', 64).shares, 262_144, 'v1 shares are clamped');
    for (let v = 1; v <= 20; v++) assert.ok(cpuPolicy('guaranteed', v).weight >= 10 * cpuPolicy('best-effort', v).weight);
    assert.deepEqual(policyFiles('v2', cpuPolicy('best-effort', 1)), [['cpu.weight', '50'], ['cpu.max', '100000 100000']]);
    assert.deepEqual(policyFiles('v2', cpuPolicy('guaranteed', 1)), [['cpu.weight', '500'], ['cpu.max', 'max 100000']]);
    assert.deepEqual(policyFiles('v1', cpuPolicy('guaranteed', 1)), [['cpu.shares', '5120'], ['cpu.cfs_period_us', '100000'], ['cpu.cfs_quota_us', '-1']]);
  });

  const logs = () => {
    const lines: string[] = [];
    return { lines, log: { info: (_: object, m: string) => void lines.push(m), warn: (_: object, m: string) => void lines.push(m) } };
  };

  it('writes a cgroup v1 layout', async () => {
    const root = join(scratch, 'cg1');
    mkdirSync(join(root, 'cpu'), { recursive: true });
    const { log } = logs();
    const cg = new CpuCgroups(log, root);
    assert.equal(cg.version, 'v1');
    assert.equal(await cg.apply('vm-a', 4242, cpuPolicy('best-effort', 3)), true);
    const dir = join(root, 'cpu', 'kumo', 'vm-a');
    assert.equal(readFileSync(join(dir, 'cpu.shares'), 'utf8'), '1536');
    assert.equal(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8'), '300000');
    assert.equal(readFileSync(join(dir, 'cgroup.procs'), 'utf8'), '4242');
  });

  it('writes a cgroup v2 layout with the cpu controller enabled on the way', async () => {
    const root = join(scratch, 'cg2');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(root, 'cgroup.controllers'), 'cpu io memory');
    const { log } = logs();
    const cg = new CpuCgroups(log, root);
    assert.equal(cg.version, 'v2');
    assert.equal(await cg.apply('vm-b', 77, cpuPolicy('guaranteed', 4)), true);
    assert.equal(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8'), '+cpu');
    assert.equal(readFileSync(join(root, 'kumo', 'cgroup.subtree_control'), 'utf8'), '+cpu');
    assert.equal(readFileSync(join(root, 'kumo', 'vm-b', 'cpu.weight'), 'utf8'), '2000');
    assert.equal(readFileSync(join(root, 'kumo', 'vm-b', 'cpu.max'), 'utf8'), 'max 100000');
  });

  it('logs one line and carries on where cgroups cannot be used', async () => {
    const { lines, log } = logs();
    const missing = new CpuCgroups(log, join(scratch, 'no-cgroups'));
    assert.equal(missing.version, null);
    assert.equal(await missing.apply('vm-c', 1, cpuPolicy('guaranteed', 1)), false);
    assert.equal(await missing.apply('vm-d', 1, cpuPolicy('guaranteed', 1)), false);
    await missing.remove('vm-c');
    assert.equal(lines.length, 1);
    assert.match(lines[0], /without the CPU policy/);

    const root = join(scratch, 'cg-ro');
    mkdirSync(join(root, 'cpu'), { recursive: true });
    writeFileSync(join(root, 'cpu', 'kumo'), 'a file where a directory should be');
    const l2 = logs();
    const broken = new CpuCgroups(l2.log, root);
    assert.equal(await broken.apply('vm-e', 1, cpuPolicy('best-effort', 1)), false);
    assert.equal(await broken.apply('vm-f', 1, cpuPolicy('best-effort', 1)), false);
    assert.equal(l2.lines.length, 1);
  });
});

describe('console log', () => {
  it('reads the tail of the log, or nothing when there is none', async () => {
    const p = join(scratch, 'tail.log');
    writeFileSync(p, 'hello console\n');
    assert.equal((await readTail(p, 8)).toString(), 'console\n');
    assert.equal((await readTail(p, 1000)).toString(), 'hello console\n');
    assert.equal((await readTail(join(scratch, 'missing.log'), 10)).length, 0);
  });

  it('trims a log past the threshold and keeps at least the last 1 MiB', async () => {
    const p = join(scratch, 'big.log');
    const lines = Array.from({ length: 60_000 }, (_, i) => `line ${String(i).padStart(6, '0')} ${'x'.repeat(80)}\n`).join('');
    writeFileSync(p, lines);
    const size = statSync(p).size;
    assert.ok(size > 4 << 20);
    const how = await trimLog(p, 1 << 20, 4 << 20);
    assert.ok(how === 'collapse' || how === 'copy', String(how)); // collapse on ext4/xfs, copy on e.g. tmpfs
    const after_ = readFileSync(p);
    assert.ok(after_.length >= 1 << 20 && after_.length < (1 << 20) + 65536, `kept ${after_.length}`);
    assert.ok(lines.endsWith(after_.toString()), 'what is kept is the end of the log');
    assert.equal(await trimLog(p, 1 << 20, 4 << 20), null, 'small enough now');
  });

  it('falls back to copying where collapse is impossible (keep smaller than a block)', async () => {
    const p = join(scratch, 'small.log');
    writeFileSync(p, 'a'.repeat(3000) + 'THE END');
    assert.equal(await trimLog(p, 100, 1000), 'copy');
    assert.equal(readFileSync(p, 'utf8'), 'a'.repeat(93) + 'THE END');
  });
});

describe('exit reasons', () => {
  it('only a guest-initiated shutdown is a shutdown', () => {
    assert.equal(exitReason({ guest: true, reason: 'guest-shutdown' }), 'shutdown');
    assert.equal(exitReason({ guest: true, reason: 'guest-panic' }), 'crash');
    assert.equal(exitReason({ guest: false, reason: 'host-signal' }), 'crash');
    assert.equal(exitReason({ guest: false, reason: 'host-qmp-quit' }), 'crash');
    assert.equal(exitReason(null), 'crash');
  });
});

describe('process liveness', () => {
  it('accepts only a living process started with this pidfile', async () => {
    const pidfile = join(scratch, 'fake.pid');
    // A stand-in whose command line carries `-pidfile <pidfile>` as QEMU's does.
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', '--', '-pidfile', pidfile], { stdio: 'ignore' });
    try {
      await new Promise((r) => child.once('spawn', r));
      writeFileSync(pidfile, `${child.pid}\n`);
      assert.equal(readPidfile(pidfile), child.pid);
      assert.ok(procState(child.pid!) !== null);
      assert.equal(isQemuFor(child.pid!, pidfile), true);
      assert.equal(findQemu(pidfile), child.pid);
      assert.equal(isQemuFor(child.pid!, join(scratch, 'other.pid')), false, 'another VM\'s pidfile');
      assert.equal(isQemuFor(process.pid, pidfile), false, 'a process without that pidfile');
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    assert.equal(isQemuFor(child.pid!, pidfile), false, 'gone');
    assert.equal(findQemu(pidfile), null);
    writeFileSync(pidfile, 'garbage');
    assert.equal(readPidfile(pidfile), null);
    assert.equal(readPidfile(join(scratch, 'none.pid')), null);
    assert.ok(!existsSync(join(scratch, 'none.pid')));
  });
});
