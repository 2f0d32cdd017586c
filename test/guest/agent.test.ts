/**
 * The tiny guest's agent against a real metadata responder: QEMU user networking (slirp) plays the
 * host's dnsmasq (a 169.254.x.y/16 lease on the first NIC) and forwards 169.254.169.254:80 to the
 * responder on 127.0.0.1 (guestfwd, one forwarder process per connection). Checks the `#!`
 * user-data output on the console and that it runs once across a reboot, then a live change
 * (key, password hash, file, address, hostname) confirmed by the guest with its generation, and
 * the result on the powered-off disk; and a VM whose NIC finds no metadata service.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildTinyImage, type BuildTinyResult } from '../../src/guest/build-tiny.js';
import type { VmMetadata } from '../../src/metadata/types.js';
import { serve, vmA, type Served } from '../metadata/fixtures.js';
import { bootTinyVm, waitForSocket, type TinyVm } from './tiny-vm.js';

const VM_ID = 'vm-agent0000001';
const MAC = '52:54:00:4b:00:01';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKumoAgentTestKey kumo@test';
const HASH = '$6$kumosalt$Qm9ndXNIYXNoRm9yVGhlVGlueUd1ZXN0QWdlbnRUZXN0Li4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4u';
const FILE_TEXT = 'line one\nline "two" with $(not a command) and `backticks`\n';
const EVIL_PATH = '/etc/kumo-test/a;$(poweroff)`poweroff`|poweroff';
const cacheDir = process.env.KUMO_CACHE ?? join(tmpdir(), 'kumo-guest-cache');

/** Relays one guest connection (stdin/stdout from QEMU's guestfwd cmd:) to the responder. */
const FORWARDER = `import net from 'node:net';
const s = net.connect(Number(process.argv[2]), '127.0.0.1');
process.stdin.pipe(s);
s.pipe(process.stdout);
s.on('close', () => process.exit(0));
s.on('error', () => process.exit(1));
`;

function metadata(over: Partial<VmMetadata> = {}): VmMetadata {
  return vmA({
    vmId: VM_ID,
    hostname: 'tiny-agent',
    publicKeys: [],
    userData: Buffer.from('#!/bin/sh\necho "hello from user-data on $(cat /run/kumo-vm-id)"\nexit 3\n'),
    vendorData: { kumo: { users: [], files: [] } },
    network: { links: [{ id: 'port0', mac: MAC }], networks: [], services: [] },
    generation: 1,
    localIpv4: null,
    ...over,
  });
}

describe('tiny guest agent', () => {
  let work: string;
  let built: BuildTinyResult;
  let served: Served;
  let disk: string;
  let fwd: string;
  const vms: TinyVm[] = [];
  let firstDone = false;
  const say = (s: string) => console.log(s);
  const secs = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'kumo-agent-test-'));
    built = await buildTinyImage({ cacheDir, outDir: join(work, 'img'), log: say });
    disk = join(work, 'vm.raw');
    execFileSync('cp', ['--sparse=always', built.disk, disk]);
    served = await serve([metadata()]);
    fwd = join(work, 'fwd.mjs');
    writeFileSync(fwd, FORWARDER);
  });
  after(async () => {
    for (const vm of vms) vm.kill();
    await served?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** `metadata: false`: a NIC and a DHCP lease, but nothing answers on 169.254.169.254. */
  function boot(name: string, metadata = true): TinyVm {
    const port = served.port[VM_ID];
    const netdev = [
      'user', 'id=n0', 'restrict=on', 'net=169.254.0.0/16', 'host=169.254.0.2', 'dhcpstart=169.254.10.10',
      ...(metadata ? [`guestfwd=tcp:169.254.169.254:80-cmd:${process.execPath} ${fwd} ${port}`] : []),
    ].join(',');
    const vm = bootTinyVm({
      kernel: built.vmlinux, initrd: built.initrd, disk, dir: work, name, serial: VM_ID,
      append: `console=ttyS0 quiet${process.env.KUMO_AGENT_DEBUG ? ` kumo.debug=${process.env.KUMO_AGENT_DEBUG}` : ''}`,
      extraArgs: ['-netdev', netdev, '-device', `virtio-net-pci,netdev=n0,mac=${MAC}`],
    });
    vms.push(vm);
    return vm;
  }

  async function powerDown(vm: TinyVm): Promise<void> {
    await vm.qmp([{ execute: 'system_powerdown' }]);
    const code = await Promise.race([vm.exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 30_000).unref())]);
    assert.equal(code, 0, `QEMU should power off within 30 s; console:\n${vm.lines().join('\n')}`);
  }

  const cat = (p: string) => execFileSync('debugfs', ['-R', `cat ${p}`, disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const stat = (p: string) => execFileSync('debugfs', ['-R', `stat ${p}`, disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

  test('first boot: lease, config applied and confirmed, user-data output on the console; a live change is applied and confirmed', { timeout: 120_000 }, async () => {
    const t0 = Date.now();
    const vm = boot('boot1');
    await waitForSocket(vm.qmpSocket);
    await vm.waitForLine(new RegExp(`^KUMO-BOOT vm=${VM_ID} boot=1$`), 60_000);
    say(`boot to KUMO-BOOT: ${secs(t0)}`);
    await vm.waitForLine(/^KUMO-CONFIG generation=1 applied$/, 30_000);
    say(`boot to KUMO-CONFIG generation=1: ${secs(t0)}`);
    assert.deepEqual(served.applied, [[VM_ID, 1]]);
    assert.ok(vm.lines().includes('KUMO-NET eth0 169.254.10.10/16'), vm.lines().join('\n'));
    await vm.waitForLine(/^hello from user-data on vm-agent0000001$/, 30_000);
    say(`boot to user-data output: ${secs(t0)}`);
    await vm.waitForLine(/^KUMO-USERDATA exit=3$/, 10_000);

    // A live change, as the controller makes one: new generation, then notify.
    const md = served.vms.get(VM_ID)!;
    served.vms.set(VM_ID, {
      ...md,
      generation: 2,
      publicKeys: [{ name: 'default', key: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRootKey root@test' }],
      network: {
        ...md.network,
        networks: [{ id: 'net0', link: 'port0', type: 'ipv4', ipAddress: '10.77.0.5', netmask: '255.255.255.0', routes: [] }],
      },
      vendorData: {
        kumo: {
          hostname: 'renamed-by-kumo',
          users: [{ name: 'alice', passwordHash: HASH, sshKeys: [KEY] }],
          files: [
            { path: '/etc/kumo-test/hello.txt', content: Buffer.from(FILE_TEXT).toString('base64'), mode: '0640' },
            // data, never code: evaluated, this name would power the guest off before it confirms
            { path: EVIL_PATH, content: Buffer.from('x').toString('base64'), mode: '0600' },
          ],
          iptables: '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n',
        },
      },
    });
    const t1 = Date.now();
    served.responder.notify(VM_ID);
    await vm.waitForLine(/^KUMO-CONFIG generation=2 applied$/, 30_000);
    say(`notify to KUMO-CONFIG generation=2: ${secs(t1)}`);
    assert.deepEqual(served.applied, [[VM_ID, 1], [VM_ID, 2]]);
    assert.ok(vm.lines().includes('KUMO-NET eth0 169.254.10.10/16 10.77.0.5/24'), vm.lines().join('\n'));
    assert.ok(!vm.lines().some((l) => /KUMO-CONFIG generation=\d+ failed/.test(l)), vm.lines().join('\n'));

    // The address goes when it is no longer listed; the DHCP one stays.
    const md2 = served.vms.get(VM_ID)!;
    served.vms.set(VM_ID, { ...md2, generation: 3, network: { ...md2.network, networks: [] } });
    served.responder.notify(VM_ID);
    await vm.waitForLine(/^KUMO-CONFIG generation=3 applied$/, 30_000);
    const net = vm.lines().filter((l) => l.startsWith('KUMO-NET '));
    assert.equal(net.at(-1), 'KUMO-NET eth0 169.254.10.10/16');
    await powerDown(vm);

    assert.equal(cat('/root/.ssh/authorized_keys'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRootKey root@test\n');
    assert.equal(cat('/home/alice/.ssh/authorized_keys'), `${KEY}\n`);
    assert.match(stat('/home/alice/.ssh/authorized_keys'), /Mode:\s+0600/);
    assert.match(stat('/home/alice/.ssh'), /Mode:\s+0700/);
    assert.match(cat('/etc/passwd'), /^alice:x:1000:1000::\/home\/alice:\/bin\/sh$/m);
    assert.ok(cat('/etc/shadow').split('\n').includes(`alice:${HASH}:19000:0:99999:7:::`), cat('/etc/shadow'));
    assert.equal(cat('/etc/kumo-test/hello.txt'), FILE_TEXT);
    assert.match(stat('/etc/kumo-test/hello.txt'), /Mode:\s+0640/);
    assert.equal(cat(EVIL_PATH), 'x');
    assert.equal(cat('/etc/hostname'), 'renamed-by-kumo\n');
    assert.equal(cat('/etc/iptables/rules.v4'), '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n');
    assert.equal(cat(`/var/lib/kumo/user-data.${VM_ID}.done`), '');
    firstDone = true;
  });

  test('second boot: the config is applied again, the user-data script does not run again', { timeout: 90_000 }, async (t) => {
    if (!firstDone) return t.skip('the first boot failed');
    const before_ = served.applied.length;
    const t0 = Date.now();
    const vm = boot('boot2');
    await waitForSocket(vm.qmpSocket);
    await vm.waitForLine(new RegExp(`^KUMO-BOOT vm=${VM_ID} boot=2$`), 60_000);
    await vm.waitForLine(/^KUMO-CONFIG generation=3 applied$/, 30_000);
    say(`second boot to KUMO-CONFIG: ${secs(t0)}`);
    assert.deepEqual(served.applied.slice(before_), [[VM_ID, 3]]);
    // In the first boot the script's output followed KUMO-CONFIG within a second or two.
    await new Promise((r) => setTimeout(r, 4000));
    const lines = vm.lines();
    assert.ok(!lines.some((l) => l.includes('hello from user-data') || l.startsWith('KUMO-USERDATA')), lines.join('\n'));
    await powerDown(vm);
  });

  test('no metadata service: the boot is unaffected, the console stays quiet, the VM powers off cleanly', { timeout: 90_000 }, async (t) => {
    if (!firstDone) return t.skip('the first boot failed');
    const vm = boot('boot3', false);
    await waitForSocket(vm.qmpSocket);
    await vm.waitForLine(new RegExp(`^KUMO-BOOT vm=${VM_ID} boot=3$`), 60_000);
    await new Promise((r) => setTimeout(r, 5000));
    await powerDown(vm);
    // Up to the shutdown (init's own messages follow it) the agent has printed nothing.
    const lines = vm.lines().filter((l) => l.trim() !== '');
    assert.deepEqual(lines.slice(0, lines.indexOf(`KUMO-SHUTDOWN vm=${VM_ID}`) + 1), [`KUMO-BOOT vm=${VM_ID} boot=3`, `KUMO-SHUTDOWN vm=${VM_ID}`]);
  });
});
