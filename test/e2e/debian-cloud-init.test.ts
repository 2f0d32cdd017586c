/**
 * A real cloud-init guest on kumo: the Debian image `kumo image build-debian` makes (built on a cold
 * cache, copied on a warm one) restored into a VM with a NIC, its ssh key, hostname, password and a
 * file set through the init API while it is stopped, user-data given at allocateVm. It boots on a QEMU agent whose
 * metadata link leases its first NIC an address (dnsmasq) and answers http://169.254.169.254/.
 * Evidence comes from the guest: its user-data script prints what cloud-init did to the console.
 * The agent runs with --nocloud-seed, so the guest also has a `cidata` CD-ROM; the script reads it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDebianImage, IMAGE_NAME, registration } from '../../src/guest/debian/build.js';
import { MirrorUnreachable } from '../../src/guest/debian/debootstrap.js';
import { QemuCloud, say, waitFor } from './support.js';

const cacheDir = process.env.KUMO_CACHE ?? join(tmpdir(), 'kumo-guest-cache');
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl tester@kumo';
const PASSWORD = 'debian guest password';
const MOTD = 'set through the init API before the first boot\n';
const DEBIAN_TYPE = 'be.768m';
// cloud-init under TCG on two busy cores: minutes. A wait, not a measure.
const CLOUD_INIT_MS = 12 * 60_000;

/** Prints its evidence on the serial console, one fact a line. */
const USER_DATA = `#!/bin/sh
{
echo "KUMO-UD ran as $(id -un)"
echo "KUMO-UD hostname=$(hostname)"
echo "KUMO-UD keys=$(tr '\\n' '|' < /home/debian/.ssh/authorized_keys)"
echo "KUMO-UD datasource=$(sed -n 's/.*"datasource": *"\\([^"]*\\)".*/\\1/p' /run/cloud-init/status.json | head -n 1)"
echo "KUMO-UD instance=$(cat /var/lib/cloud/data/instance-id)"
echo "KUMO-UD shadow=$(grep '^debian:' /etc/shadow | cut -d: -f2)"
echo "KUMO-UD motd=$(base64 -w0 < /etc/motd)"
mkdir -p /mnt/seed
if mount -o ro LABEL=cidata /mnt/seed; then echo "KUMO-UD seed=$(tr -d ' \\n' < /mnt/seed/meta-data)"
else echo "KUMO-UD seed: cannot mount LABEL=cidata: $(ls /dev/sr* /dev/disk/by-label 2>&1 | tr '\\n' ' ') $(lsmod | grep -E 'ahci|sr_mod|isofs' | tr '\\n' ' ')"; fi
echo "KUMO-UD done"
} > /dev/ttyS0 2>&1
`;

describe('Debian cloud-init guest on kumo', { timeout: 30 * 60_000 }, () => {
  const cloud = new QemuCloud('kumo-e2e-debian-');
  let skip: string | null = null;
  let imageId = '';

  before(async () => {
    const out = mkdtempSync(join(tmpdir(), 'kumo-debian-img-'));
    try {
      const b = await buildDebianImage({ cacheDir, outDir: out, log: (l) => say(l) });
      say(`Debian image ${b.cached ? 'from the cache' : 'built'} in ${b.seconds.toFixed(0)} s`);
      await cloud.start({
        images: [registration(b)],
        vmTypes: [{ type: DEBIAN_TYPE, vcpus: 1, memoryMiB: 768, systemDiskGiB: 2, resourceType: 'best-effort' }],
        // A NoCloud seed as well: the guest can read it, and cloud-init still prefers OpenStack.
        agentArgs: ['--nocloud-seed'],
      });
      imageId = cloud.variants.get(IMAGE_NAME)!;
    } catch (e) {
      if (!(e instanceof MirrorUnreachable)) throw e;
      skip = `debootstrap cannot reach a Debian mirror: ${e.message.split('\n')[0]}`;
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
  after(() => cloud.destroy());

  it('detects the OpenStack datasource, takes the hostname and key set through the init API, runs user-data', async (t) => {
    if (skip) return t.skip(skip);
    const net = await cloud.rest('tenant', 'POST', '/networks', { name: 'deb-net' });
    assert.equal(net.status, 201, JSON.stringify(net.body));
    const vm = await cloud.rest('tenant', 'POST', '/vms', { type: DEBIAN_TYPE, name: 'deb-vm', userData: USER_DATA });
    assert.equal(vm.status, 201, JSON.stringify(vm.body));
    const vmId = (vm.body as { vmId: string }).vmId;
    assert.equal((await cloud.rest('tenant', 'POST', `/vms/${vmId}/nics`, { networkId: (net.body as { networkId: string }).networkId })).status, 201);
    for (const [path, body] of [
      ['ssh-key', { user: 'debian', publicKey: KEY }], ['network', { hostname: 'deb-1' }],
      ['password', { user: 'debian', password: PASSWORD }], ['file', { path: '/etc/motd', content: Buffer.from(MOTD).toString('base64') }],
    ] as const) {
      const r = await cloud.rest('tenant', 'POST', `/vms/${vmId}/init/${path}`, body);
      assert.equal(r.status, 202, `${path}: ${JSON.stringify(r.body)}`);
      const done = await cloud.wait((r.body as { requestId: string }).requestId, 30_000);
      assert.equal(done.status, 'succeeded', JSON.stringify(done));
      assert.equal((done.result as { stored: boolean }).stored, true);
    }
    await cloud.run(vmId, 'restore-image', { imageId });
    const started = Date.now();
    await cloud.run(vmId, 'power-on');
    const consoleText = await waitFor('the user-data script to report (KUMO-UD done)', async () => {
      const text = await cloud.console(vmId);
      return text.includes('KUMO-UD done') ? text : null;
    }, CLOUD_INIT_MS, 2000);
    say(`cloud-init ran user-data ${((Date.now() - started) / 1000).toFixed(0)} s after power-on`);
    const ud = consoleText.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.startsWith('KUMO-UD'));
    say(ud.join('\n'));
    assert.ok(ud.includes('KUMO-UD ran as root'), 'the #! user-data script ran');
    assert.ok(ud.includes('KUMO-UD hostname=deb-1'), 'hostname from meta_data.json (setNetwork)');
    assert.ok(ud.some((l) => l.startsWith('KUMO-UD keys=') && l.includes(KEY)), 'the setSshKey key in /home/debian/.ssh/authorized_keys');
    assert.ok(ud.some((l) => /^KUMO-UD datasource=DataSourceOpenStack/.test(l)), 'cloud-init used the OpenStack datasource');
    assert.ok(ud.includes(`KUMO-UD instance=${vmId}`), 'the instance id is the VM id');
    assert.ok(ud.includes(`KUMO-UD motd=${Buffer.from(MOTD).toString('base64')}`), 'writeFile reached the guest through the cloud-config vendor data');
    const hash = ud.find((l) => l.startsWith('KUMO-UD shadow='))?.slice('KUMO-UD shadow='.length) ?? '';
    assert.match(hash, /^\$6\$/, 'the debian user has a SHA-512 crypt hash');
    assert.equal(execFileSync('openssl', ['passwd', '-6', '-salt', hash.split('$')[2], PASSWORD], { encoding: 'utf8' }).trim(), hash, 'setPassword\'s hash');
    assert.ok(ud.some((l) => l.startsWith('KUMO-UD seed=') && l.includes(`"instance-id":"${vmId}"`) && l.includes('"local-hostname":"deb-1"')),
      'the NoCloud seed CD-ROM holds this VM\'s meta-data');
    await cloud.run(vmId, 'power-off', { force: true });
  });
});
