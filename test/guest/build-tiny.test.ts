/**
 * Builds the tiny guest for real (Debian packages via apt, cached under KUMO_CACHE or the OS temp
 * dir) and boots it under QEMU/TCG: boot marker with the SMBIOS VM id, clean shutdown on the ACPI
 * power button, the boot counter persisted on the disk, the counter service.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { buildTinyImage, type BuildTinyResult, type TinyManifest } from '../../src/guest/build-tiny.js';
import { readCpio } from '../../src/guest/cpio.js';
import { sha256File } from '../../src/guest/hash.js';
import { bootTinyVm, waitForSocket, type TinyVm } from './tiny-vm.js';

const VM_ID = 'vm-0123456789ab';
const cacheDir = process.env.KUMO_CACHE ?? join(tmpdir(), 'kumo-guest-cache');

describe('tiny guest image', () => {
  let work: string;
  let built: BuildTinyResult;
  const vms: TinyVm[] = [];
  const say = (s: string) => console.log(s);

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'kumo-guest-test-'));
  });
  after(() => {
    for (const vm of vms) vm.kill();
    rmSync(work, { recursive: true, force: true });
  });

  test('builds disk, kernel, initramfs and manifest from Debian packages', { timeout: 600_000 }, async () => {
    const t0 = Date.now();
    built = await buildTinyImage({ cacheDir, outDir: join(work, 'a'), log: say });
    say(`first build in this run: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const manifest = JSON.parse(readFileSync(built.manifest, 'utf8')) as TinyManifest;
    assert.equal(manifest.kernelVersion, built.kernelVersion);
    assert.match(built.kernelVersion, /^\d+\.\d+\.\d+-\d+-amd64$/);
    assert.deepEqual(manifest.packages.map((p) => p.name), [`linux-image-${built.kernelVersion}`, 'busybox-static']);
    for (const [key, path] of [['disk', built.disk], ['kernel', built.kernel], ['vmlinux', built.vmlinux], ['initrd', built.initrd]] as const) {
      assert.equal(manifest.files[key].sha256, await sha256File(path), `${key} sha256`);
      assert.equal(manifest.files[key].size, statSync(path).size);
    }
    assert.equal(readFileSync(built.vmlinux).subarray(0, 4).toString('latin1'), '\x7fELF');
    const disk = statSync(built.disk);
    assert.equal(disk.size, 64 * 1024 * 1024);
    assert.ok(disk.blocks * 512 < disk.size / 4, `disk is sparse (${disk.blocks * 512} bytes allocated)`);

    // The initramfs: modules in dependency order, decompressed, next to busybox and /init.
    const members = readCpio(gunzipSync(readFileSync(built.initrd)));
    const names = new Set(members.map((m) => m.name));
    for (const n of ['init', 'bin/busybox', 'bin/sh', 'dev/console', 'lib/modules/virtio_blk.ko', 'lib/modules/ext4.ko']) assert.ok(names.has(n), n);
    const order = members.find((m) => m.name === 'etc/kumo-modules')!.data.toString().trim().split('\n');
    assert.deepEqual(order, manifest.modules);
    const before_ = (a: string, b: string) => assert.ok(order.indexOf(a) >= 0 && order.indexOf(a) < order.indexOf(b), `${a} before ${b}`);
    before_('virtio', 'virtio_pci');
    before_('virtio_ring', 'virtio_blk');
    before_('jbd2', 'ext4');
    before_('crc32c_generic', 'ext4');
    before_('button', 'evdev');
    for (const m of members.filter((x) => x.name.endsWith('.ko'))) assert.equal(m.data.subarray(0, 4).toString('latin1'), '\x7fELF', m.name);
    assert.ok(members.every((m) => m.uid === 0 && m.gid === 0));

    // The root filesystem, read without mounting it.
    const cat = (p: string) => execFileSync('debugfs', ['-R', `cat ${p}`, built.disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(cat('/etc/inittab'), /::sysinit:\/etc\/kumo\/rc\.boot/);
    assert.match(cat('/usr/bin/kumo-counter'), /KUMO-COUNTER/);
    assert.equal(JSON.parse(cat('/etc/kumo/release.json')).kernelVersion, built.kernelVersion);
  });

  test('a second build reuses the cache: fast, same kernel and initramfs bytes', { timeout: 120_000 }, async () => {
    const t0 = Date.now();
    const again = await buildTinyImage({ cacheDir, outDir: join(work, 'b'), log: say });
    const secs = (Date.now() - t0) / 1000;
    say(`warm build: ${secs.toFixed(1)} s`);
    assert.ok(secs < 10, `warm build took ${secs} s`);
    assert.equal(await sha256File(again.initrd), await sha256File(built.initrd));
    assert.equal(await sha256File(again.kernel), await sha256File(built.kernel));
    const m = JSON.parse(readFileSync(again.manifest, 'utf8')) as TinyManifest;
    assert.ok(m.packages.every((p) => p.source === 'cached-tree'), JSON.stringify(m.packages));
  });

  async function powerDown(vm: TinyVm): Promise<number> {
    const t0 = Date.now();
    const replies = await vm.qmp([{ execute: 'system_powerdown' }]);
    assert.deepEqual(replies, [{ return: {} }]);
    const code = await Promise.race([vm.exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 30_000).unref())]);
    assert.equal(code, 0, `QEMU should power off by itself within 30 s; console:\n${vm.lines().join('\n')}`);
    return Date.now() - t0;
  }

  function fsState(disk: string): { clean: boolean; recovery: boolean } {
    const out = execFileSync('dumpe2fs', ['-h', disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return { clean: /^Filesystem state:\s+clean$/m.test(out), recovery: /needs_recovery/.test(out) };
  }

  test('boots under TCG: marker with the SMBIOS id, powers off on the ACPI button', { timeout: 120_000 }, async () => {
    const disk = join(work, 'vm.raw');
    copyFileSync(built.disk, disk);
    const t0 = Date.now();
    const vm = bootTinyVm({ kernel: built.kernel, initrd: built.initrd, disk, dir: work, name: 'boot1', serial: VM_ID });
    vms.push(vm);
    await waitForSocket(vm.qmpSocket);
    await vm.waitForLine(new RegExp(`^KUMO-BOOT vm=${VM_ID} boot=1$`), 60_000);
    say(`boot to marker under TCG with vmlinuz: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(vm.lines().filter((l) => l.includes('KUMO-BOOT')).length, 1);
    const ms = await powerDown(vm);
    say(`system_powerdown to QEMU exit: ${(ms / 1000).toFixed(1)} s`);
    const console_ = vm.lines();
    assert.ok(console_.includes(`KUMO-SHUTDOWN vm=${VM_ID}`), console_.join('\n'));
    assert.ok(!console_.some((l) => /error|failed|not found/i.test(l)), `console:\n${console_.join('\n')}`);
    assert.deepEqual(fsState(disk), { clean: true, recovery: false });
  });

  test('boots again from vmlinux (PVH): boot count persisted, id from kumo.vm=, counter on console and disk', { timeout: 120_000 }, async () => {
    const disk = join(work, 'vm.raw');
    const t0 = Date.now();
    const vm = bootTinyVm({
      kernel: built.vmlinux,
      initrd: built.initrd,
      disk,
      dir: work,
      name: 'boot2',
      append: `console=ttyS0 quiet kumo.vm=${VM_ID} kumo.counter=1 kumo.counter_ms=200`,
    });
    vms.push(vm);
    await waitForSocket(vm.qmpSocket);
    await vm.waitForLine(new RegExp(`^KUMO-BOOT vm=${VM_ID} boot=2$`), 60_000);
    say(`boot to marker under TCG with vmlinux: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await vm.waitForLine(/^KUMO-COUNTER n=3$/, 30_000);
    await powerDown(vm);
    const printed = vm.lines().flatMap((l) => /^KUMO-COUNTER n=(\d+)$/.exec(l)?.[1] ?? []).map(Number);
    assert.deepEqual(printed, printed.map((_, i) => i + 1));
    const cat = (p: string) => execFileSync('debugfs', ['-R', `cat ${p}`, disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const onDisk = cat('/var/lib/kumo/counter').trim().split('\n').map(Number);
    assert.deepEqual(onDisk.slice(0, printed.length), printed, 'every printed number is on the disk');
    assert.equal(cat('/var/lib/kumo/boot-count').trim(), '2');
    assert.deepEqual(fsState(disk), { clean: true, recovery: false });
  });
});
