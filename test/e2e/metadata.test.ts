/**
 * The init API end to end with tiny guests on a QEMU agent: user-data output on the console, then
 * setSshKey, setPassword, writeFile and setIpAddress on a running VM, each request ending
 * `succeeded` only once the guest confirmed; the key, the hash and the file read back from the
 * VM's disk (captured to an image after power-off, read with debugfs), and the new address answers
 * a ping from a peer VM.
 *
 * Each VM's first NIC is its metadata link. The second NICs of the two VMs are joined on a bridge
 * this test makes: it stands in for the SDN driver, which this kernel cannot run (no 802.1Q).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tapName } from '../../src/compute/qemu/taps.js';
import { BOOT_MS, QemuCloud, say, TINY_TYPE, waitFor } from './support.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl tester@kumo';
const PASSWORD = 'correct horse battery staple';
const MOTD = 'welcome to a kumo guest\n';
const A_ADDR = '10.77.0.5';
const B_ADDR = '10.77.0.6';

const A_USER_DATA = '#!/bin/sh\necho "KUMO-UD hello from $(hostname) as uid $(id -u)"\n';
// The peer keeps pinging A's future address and says when it first answers.
const B_USER_DATA = `#!/bin/sh
( i=0; while [ $i -lt 600 ]; do
  if ping -c 1 -W 1 ${A_ADDR} >/dev/null 2>&1; then echo "KUMO-PEER-PING ${A_ADDR} answered"; exit 0; fi
  i=$((i + 1)); sleep 1
done; echo "KUMO-PEER-PING gave up" ) > /dev/ttyS0 2>&1 &
`;

const run = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

describe('metadata service and init API with tiny guests', { timeout: 20 * 60_000 }, () => {
  const cloud = new QemuCloud('kumo-e2e-md-');
  const bridge = `kmd${randomBytes(4).toString('hex')}`;

  before(async () => {
    await cloud.start();
    run('ip', 'link', 'add', bridge, 'type', 'bridge');
    run('ip', 'link', 'set', bridge, 'up');
  });
  after(async () => {
    await cloud.destroy();
    try { run('ip', 'link', 'del', bridge); } catch { /* gone */ }
  });

  const post = async (path: string, body: unknown, status = 201) => {
    const r = await cloud.rest('tenant', 'POST', path, body);
    assert.equal(r.status, status, `POST ${path}: ${JSON.stringify(r.body)}`);
    return r.body as Record<string, any>;
  };
  const init = async (vmId: string, path: string, body: unknown) => {
    const { requestId } = await post(`/vms/${vmId}/init/${path}`, body, 202);
    const done = await cloud.wait(requestId, 120_000);
    assert.equal(done.status, 'succeeded', `${path}: ${JSON.stringify(done)}`);
    return done.result as { generation: number; applied: boolean };
  };
  const consoleHas = (vmId: string, what: string | RegExp, ms = BOOT_MS) => waitFor(`${vmId} to print ${what}`, async () => {
    const text = await cloud.console(vmId);
    return (typeof what === 'string' ? text.includes(what) : what.test(text)) ? text : null;
  }, ms, 500);

  it('user-data runs; init changes reach the running guest, which confirms; a peer pings the new address', async () => {
    const meta = (await post('/networks', { name: 'md-first' })).networkId as string;
    const peer = (await post('/networks', { name: 'md-peer' })).networkId as string;
    const vms: string[] = [];
    for (const [name, userData] of [['md-a', A_USER_DATA], ['md-b', B_USER_DATA]]) {
      const vmId = (await post('/vms', { type: TINY_TYPE, name, userData })).vmId as string;
      for (const networkId of [meta, peer]) await post(`/vms/${vmId}/nics`, { networkId });
      await cloud.run(vmId, 'restore-image', { imageId: cloud.imageId });
      vms.push(vmId);
    }
    const [a, b] = vms;
    for (const vmId of vms) await cloud.run(vmId, 'power-on');
    for (const vmId of vms) run('ip', 'link', 'set', tapName(vmId, 1), 'master', bridge);

    await consoleHas(a, 'KUMO-UD hello from md-a as uid 0');
    await consoleHas(a, 'KUMO-USERDATA exit=0');
    await consoleHas(a, 'KUMO-CONFIG generation=0 applied');
    say('A ran its user-data and applied its boot configuration');

    const gb = await init(b, 'set-ip-address', { slot: 1, address: `${B_ADDR}/24` });
    assert.equal(gb.applied, true);
    const results = [
      await init(a, 'ssh-key', { user: 'root', publicKey: KEY }),
      await init(a, 'password', { user: 'root', password: PASSWORD }),
      await init(a, 'file', { path: '/etc/motd', content: Buffer.from(MOTD).toString('base64') }),
      await init(a, 'set-ip-address', { slot: 1, address: `${A_ADDR}/24` }),
    ];
    assert.deepEqual(results.map((r) => [r.generation, r.applied]), [[1, true], [2, true], [3, true], [4, true]]);
    const text = await consoleHas(a, 'KUMO-CONFIG generation=4 applied', 30_000);
    assert.match(text, new RegExp(`KUMO-NET \\S+ ${A_ADDR.replace(/\./g, '\\.')}/24`));
    await consoleHas(b, `KUMO-PEER-PING ${A_ADDR} answered`, 120_000);
    say('B pinged the address A was given');

    // What the guest wrote, read from its disk: power off, capture, debugfs.
    await cloud.run(a, 'power-off');
    const volumeId = await cloud.systemVolume(a);
    const { requestId } = await cloud.rest('tenant', 'POST', `/volumes/${volumeId}/image`, { name: 'md-a-disk' }).then((r) => r.body as { requestId: string });
    const captured = await cloud.wait(requestId, 300_000);
    assert.equal(captured.status, 'succeeded', JSON.stringify(captured));
    const disk = join(cloud.data, 'images', (captured.result as { imageId: string }).imageId, 'disk.raw');
    const cat = (path: string) => run('debugfs', '-R', `cat ${path}`, disk);
    assert.ok(cat('/root/.ssh/authorized_keys').split('\n').includes(KEY), 'the key is in root\'s authorized_keys');
    assert.equal(cat('/etc/motd'), MOTD);
    const hash = cat('/etc/shadow').split('\n').find((l) => l.startsWith('root:'))!.split(':')[1];
    assert.match(hash, /^\$6\$/);
    const salt = hash.split('$')[2];
    assert.equal(run('openssl', 'passwd', '-6', '-salt', salt, PASSWORD).trim(), hash, 'the shadow hash is the password\'s SHA-512 crypt');
    // The password itself is in no log of the controller, the agent or the storage node.
    const logs = join(cloud.data, 'logs');
    for (const f of readdirSync(logs)) assert.ok(!readFileSync(join(logs, f), 'utf8').includes(PASSWORD), `the password is in ${f}`);
  });
});
