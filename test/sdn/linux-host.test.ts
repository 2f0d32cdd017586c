/**
 * The linux SDN driver on a host, inside namespaces this file makes (and deletes, also on failure):
 * the bridge and its VLANs read back with `bridge -json vlan show`, convergence (a repeat changes
 * nothing, a smaller config removes exactly the difference, hand-made stale ports and VLANs go,
 * unrelated interfaces stay), and real traffic between endpoint namespaces on kt* veths: same VLAN
 * talks, different VLANs do not, a forged MAC or IP gets nowhere while legitimate traffic passes.
 * Skipped where the kernel lacks bridge VLAN filtering (see netns-helpers.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LinuxSdnDriver } from '../../src/sdn/linux/driver.js';
import type { HostConfig } from '../../src/sdn/types.js';
import { bridgej, ipj, Lab, missingKernelFeatures, sh, tcpHello } from './netns-helpers.js';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : await missingKernelFeatures();
if (skip) console.log(`# linux-host: skipped: ${skip}`);

const [A, B, C, D] = ['a', 'b', 'c', 'd'].map((x) => `kt0000000000${x}0`);

/** `bridge -json vlan show` as `{ port: ['100 pvid untagged', '200'] }`. */
async function vlanView(ns: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const e of await bridgej(ns, 'vlan', 'show')) {
    out[e.ifname] = e.vlans.map((v: { vlan: number; flags?: string[] }) => `${v.vlan}${v.flags?.includes('PVID') ? ' pvid' : ''}${v.flags?.includes('Egress Untagged') ? ' untagged' : ''}`);
  }
  return out;
}
const master = async (ns: string, dev: string) => (await ipj(ns, 'link', 'show', 'dev', dev))[0].master ?? null;

describe('linux SDN driver: host', { skip: skip ?? false }, () => {
  it('converges the host bridge: access ports, trunk, stale ports and VLANs, nothing else', async (t) => {
    const lab = new Lab();
    t.after(() => lab.cleanup());
    const h = await lab.ns('host');
    await sh(h, 'ip', 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1p');
    await sh(h, 'ip', 'link', 'add', 'other0', 'type', 'veth', 'peer', 'name', 'other1');
    await sh(h, 'ip', 'link', 'set', 'other0', 'alias', 'not-kumo');
    await sh(h, 'ip', 'tuntap', 'add', 'dev', 'kt0000000000f0', 'mode', 'tap'); // a kt device never on the bridge
    const drv = new LinuxSdnDriver({ netns: h });
    const port = (p: string, vlan: number, n: number) => ({ port: p, vlan, mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`, ips: [`192.0.2.${n}`] });
    const cfg1: HostConfig = { hostId: 'h1', bridge: 'kbr0', uplink: 'eth1', trunk: [100, 200], ports: [port(A, 100, 10), port(B, 200, 11), port(C, 100, 12)] };

    const r1 = await drv.apply({ kind: 'host', config: cfg1 });
    assert.ok(r1.changes > 0 && r1.counts.ip > 0 && r1.counts.bridge > 0 && r1.counts.nft > 0, JSON.stringify(r1.counts));
    assert.deepEqual(await vlanView(h), { eth1: ['100', '200'], [A]: ['100 pvid untagged'], [B]: ['200 pvid untagged'], [C]: ['100 pvid untagged'] });
    for (const p of [A, B, C]) assert.equal((await ipj(h, '-d', 'link', 'show', 'dev', p))[0].linkinfo.info_kind, 'tun');
    assert.deepEqual(await drv.read('host', 'h1'), { kind: 'host', config: cfg1 });
    assert.match(await sh(h, 'nft', 'list', 'table', 'bridge', 'kumo'), /chain ports_v1/);

    const r2 = await drv.apply({ kind: 'host', config: cfg1 });
    assert.deepEqual([r2.changes, r2.commands], [0, []]);
    // An agent restart is a new driver with no memory: it reads the same state and changes nothing.
    assert.equal((await new LinuxSdnDriver({ netns: h }).apply({ kind: 'host', config: cfg1 })).changes, 0);

    // A port and a VLAN leave: exactly that is undone. The tap itself stays (compute owns it).
    const cfg2: HostConfig = { ...cfg1, trunk: [100], ports: [cfg1.ports[0], cfg1.ports[2]] };
    const r3 = await drv.apply({ kind: 'host', config: cfg2 });
    assert.deepEqual(r3.commands.sort(), ['bridge vlan del dev eth1 vid 200', `ip link set dev ${B} nomaster`, `nft: - ips ${B} 192.0.2.11`, `nft: - macs ${B} 02:00:00:00:00:0b`]);
    assert.deepEqual(await vlanView(h), { eth1: ['100'], [A]: ['100 pvid untagged'], [C]: ['100 pvid untagged'] });
    assert.equal(await master(h, B), null);

    // Stale state made by hand: a kt tap on the bridge, a VLAN on a port.
    await sh(h, 'ip', 'tuntap', 'add', 'dev', D, 'mode', 'tap');
    await sh(h, 'ip', 'link', 'set', 'dev', D, 'master', 'kbr0');
    await sh(h, 'bridge', 'vlan', 'add', 'dev', D, 'vid', '100', 'pvid', 'untagged');
    await sh(h, 'bridge', 'vlan', 'add', 'dev', A, 'vid', '300');
    const r4 = await drv.apply({ kind: 'host', config: cfg2 });
    assert.deepEqual(r4.commands.sort(), [`bridge vlan del dev ${A} vid 300`, `ip link set dev ${D} nomaster`]);
    assert.equal(await master(h, D), null);
    assert.equal((await drv.apply({ kind: 'host', config: cfg2 })).changes, 0);

    // Untouched: an unrelated veth (alias, no master, down), a kt tap never on the bridge, the uplink's peer.
    const other = (await ipj(h, 'link', 'show', 'dev', 'other0'))[0];
    assert.deepEqual([other.ifalias, other.master ?? null, other.flags.includes('UP')], ['not-kumo', null, false]);
    assert.equal(await master(h, 'kt0000000000f0'), null);
    assert.equal((await ipj(h, 'link', 'show', 'dev', 'eth1p'))[0].master ?? null, null);

    const rm = await drv.remove('host', 'h1');
    assert.ok(rm.commands.includes('ip link del dev kbr0') && rm.commands.includes('nft delete table bridge kumo'), rm.commands.join('; '));
    assert.equal(await drv.read('host', 'h1'), null);
    assert.equal((await ipj(h, 'link', 'show', 'dev', A)).length, 1); // taps stay
    assert.equal((await ipj(h, 'link', 'show', 'dev', 'eth1'))[0].ifalias ?? null, null);
  });

  it('carries traffic within a VLAN only, and drops frames with a forged MAC or IP', async (t) => {
    const lab = new Lab();
    t.after(() => lab.cleanup());
    const h = await lab.ns('host');
    await sh(h, 'ip', 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1p');
    const va = await lab.endpoint('va', h, A, '02:00:00:00:00:0a', '192.0.2.10/24');
    const vb = await lab.endpoint('vb', h, B, '02:00:00:00:00:0b', '192.0.2.11/24');
    const vc = await lab.endpoint('vc', h, C, '02:00:00:00:00:0c', '192.0.2.12/24');
    const drv = new LinuxSdnDriver({ netns: h });
    const cfg: HostConfig = {
      hostId: 'h1', bridge: 'kbr0', uplink: 'eth1', trunk: [100, 200],
      ports: [
        { port: A, vlan: 100, mac: '02:00:00:00:00:0a', ips: ['192.0.2.10'] },
        { port: B, vlan: 100, mac: '02:00:00:00:00:0b', ips: ['192.0.2.11'] },
        { port: C, vlan: 200, mac: '02:00:00:00:00:0c', ips: ['192.0.2.12'] },
      ],
    };
    await drv.apply({ kind: 'host', config: cfg });
    // The endpoints' veths were used as they are (kt* devices that exist), not replaced by taps.
    assert.equal((await ipj(h, '-d', 'link', 'show', 'dev', A))[0].linkinfo.info_kind, 'veth');
    await lab.server(vb, '192.0.2.11', 7000, 'B');
    await lab.server(vc, '192.0.2.12', 7000, 'C');

    assert.equal(await tcpHello(va, '192.0.2.11', 7000), 'B', 'same VLAN');
    assert.equal(await tcpHello(va, '192.0.2.12', 7000), null, 'VLAN 100 reached VLAN 200');
    assert.equal(await tcpHello(vc, '192.0.2.11', 7000), null, 'VLAN 200 reached VLAN 100');

    const setMac = async (mac: string) => {
      await sh(va, 'ip', 'link', 'set', 'eth0', 'down');
      await sh(va, 'ip', 'link', 'set', 'eth0', 'address', mac);
      await sh(va, 'ip', 'link', 'set', 'eth0', 'up');
    };
    await setMac('02:00:00:00:00:99');
    assert.equal(await tcpHello(va, '192.0.2.11', 7000), null, 'a forged MAC got through');
    await setMac('02:00:00:00:00:0a');
    assert.equal(await tcpHello(va, '192.0.2.11', 7000), 'B', 'the given MAC is blocked');

    await sh(va, 'ip', 'addr', 'add', '192.0.2.20/24', 'dev', 'eth0');
    assert.equal(await tcpHello(va, '192.0.2.11', 7000, { localAddress: '192.0.2.20' }), null, 'a forged IP got through');
    assert.equal(await tcpHello(va, '192.0.2.11', 7000, { localAddress: '192.0.2.10' }), 'B', 'the given IP is blocked');
  });
});
