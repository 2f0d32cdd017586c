/**
 * The linux SDN driver's pure parts, on any kernel: parsers fed with recorded iproute2/nft JSON,
 * planners fed with synthetic observations (what a device looks like) — from nothing, converged
 * (nothing to do), and with stale state to remove — and read-back of a converged device.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SdnDriverError } from '../../src/sdn/driver.js';
import { parseNft, planNft, desiredElements } from '../../src/sdn/linux/antispoof.js';
import { parseFlood, parseLinks, parseTunnels, parseVlans, type LinkState, type Observed, type VlanState } from '../../src/sdn/linux/observe.js';
import { planGateway } from '../../src/sdn/linux/plan-gateway.js';
import { planEdge, planHost } from '../../src/sdn/linux/plan.js';
import { readGateway, readHost } from '../../src/sdn/linux/readback.js';
import type { EdgeConfig, GatewayConfig, HostConfig } from '../../src/sdn/types.js';

const A = 'kt0000000000a0';
const B = 'kt0000000000b0';

function link(name: string, o: Partial<LinkState> = {}): LinkState {
  return { name, kind: null, master: null, up: true, alias: null, parent: null, data: {}, slaveData: {}, ...o };
}
function observed(links: LinkState[], vlans: Record<string, VlanState[]> = {}, rest: Partial<Observed> = {}): Observed {
  return { links: new Map(links.map((l) => [l.name, l])), vlans: new Map(Object.entries(vlans)), tunnels: new Map(), flood: [], addrs: new Map(), nft: null, ...rest };
}
const T = (vid: number): VlanState => ({ vid, pvid: false, untagged: false });
const P = (vid: number): VlanState => ({ vid, pvid: true, untagged: true });
const bridgeLink = (name: string, alias: string) => link(name, { kind: 'bridge', alias, data: { vlan_filtering: 1, vlan_default_pvid: 0 } });
const nothing = (p: { ip: string[]; bridge: string[]; nft: { changes: string[] } }) => [...p.ip, ...p.bridge, ...p.nft.changes];

const host: HostConfig = {
  hostId: 'h1', bridge: 'kbr0', uplink: 'eth1', trunk: [100, 200],
  ports: [{ port: A, vlan: 100, mac: '02:00:00:00:00:0a', ips: ['192.0.2.10'] }, { port: B, vlan: 200, mac: '02:00:00:00:00:0b', ips: ['192.0.2.11', '192.0.2.9'] }],
};

function convergedHost(): Observed {
  const want = desiredElements(host.ports);
  return observed(
    [bridgeLink('kbr0', 'kumo:host:h1'), link('eth1', { master: 'kbr0', alias: 'kumo:uplink' }), link(A, { kind: 'tun', master: 'kbr0' }), link(B, { kind: 'tun', master: 'kbr0' }), link('eth0')],
    { eth1: [T(100), T(200)], [A]: [P(100)], [B]: [P(200)] },
    { nft: { chainOk: true, rules: 11, macs: want.macs, ips: want.ips } },
  );
}

describe('linux SDN planner: host', () => {
  it('builds a host from nothing: bridge, uplink trunk, taps as access ports, anti-spoofing', () => {
    const p = planHost(host, observed([link('eth1', { up: false })]));
    assert.deepEqual(p.ip, [
      'link add kbr0 type bridge vlan_filtering 1 vlan_default_pvid 0', 'link set dev kbr0 alias kumo:host:h1', 'link set dev kbr0 up',
      'link set dev eth1 master kbr0', 'link set dev eth1 alias kumo:uplink', 'link set dev eth1 up',
      `tuntap add dev ${A} mode tap`, `link set dev ${A} master kbr0`, `link set dev ${A} up`,
      `tuntap add dev ${B} mode tap`, `link set dev ${B} master kbr0`, `link set dev ${B} up`,
    ]);
    assert.deepEqual(p.bridge, ['vlan add dev eth1 vid 100', 'vlan add dev eth1 vid 200', `vlan add dev ${A} vid 100 pvid untagged`, `vlan add dev ${B} vid 200 pvid untagged`]);
    assert.match(p.nft.script!, /add element bridge kumo macs \{ "kt0000000000a0" \. 02:00:00:00:00:0a, "kt0000000000b0" \. 02:00:00:00:00:0b \}/);
    assert.equal(p.nft.changes.length, 1 + 2 + 3);
  });

  it('has nothing to do on a converged host', () => {
    assert.deepEqual(nothing(planHost(host, convergedHost())), []);
  });

  it('removes exactly what is stale, and touches nothing off its bridge', () => {
    const obs = convergedHost();
    obs.links.set('kt0000000000c0', link('kt0000000000c0', { kind: 'tun', master: 'kbr0' }));
    obs.links.set('kt0000000000d0', link('kt0000000000d0', { kind: 'tun' }));
    obs.links.set('eth2', link('eth2', { master: 'kbr0', alias: 'kumo:uplink' }));
    obs.vlans.set('eth1', [T(100), T(200), P(1)]);
    obs.vlans.set(A, [P(100), T(300)]);
    obs.vlans.set('kbr0', [P(1)]);
    obs.nft!.ips = new Set([...obs.nft!.ips!, `${A} 192.0.2.99`]);
    const p = planHost(host, obs);
    assert.deepEqual(p.ip, ['link set dev kt0000000000c0 nomaster', 'link set dev eth2 nomaster', 'link set dev eth2 alias ""']);
    assert.deepEqual(p.bridge, ['vlan del dev kbr0 vid 1 self', 'vlan del dev eth1 vid 1', `vlan del dev ${A} vid 300`]);
    assert.deepEqual(p.nft.changes, [`nft: - ips ${A} 192.0.2.99`]);
    assert.equal(p.nft.script, `delete element bridge kumo ips { "${A}" . 192.0.2.99 }\n`);
  });

  it('moves a port to another VLAN and re-flags a trunk VLAN that was untagged', () => {
    const obs = convergedHost();
    obs.vlans.set(A, [P(200)]);
    obs.vlans.set('eth1', [T(100), P(200)]);
    assert.deepEqual(planHost(host, obs).bridge, ['vlan add dev eth1 vid 200', `vlan add dev ${A} vid 100 pvid untagged`, `vlan del dev ${A} vid 200`]);
  });

  it('uses an existing kt* device (a veth in the lab) instead of creating a tap', () => {
    const obs = convergedHost();
    obs.links.set(A, link(A, { kind: 'veth', up: false }));
    const p = planHost(host, obs);
    assert.deepEqual(p.ip, [`link set dev ${A} master kbr0`, `link set dev ${A} up`]);
    assert.deepEqual(p.bridge, [`vlan add dev ${A} vid 100 pvid untagged`]);
  });

  it('turns VLAN filtering on in an existing bridge and plans its VLANs in the next round', () => {
    const obs = convergedHost();
    obs.links.set('kbr0', link('kbr0', { kind: 'bridge', alias: 'kumo:host:h1', data: { vlan_filtering: 0, vlan_default_pvid: 1 } }));
    const p = planHost(host, obs);
    assert.deepEqual(p.ip, ['link set dev kbr0 type bridge vlan_filtering 1 vlan_default_pvid 0']);
    assert.deepEqual(p.bridge, []);
    assert.equal(p.again, true);
  });

  it('refuses configs it cannot apply safely', () => {
    const bad = (c: Partial<HostConfig>, obs = convergedHost()) => assert.throws(() => planHost({ ...host, ...c }, obs), SdnDriverError);
    bad({ ports: [{ ...host.ports[0], port: 'tap0' }] }); // would escape anti-spoofing
    bad({ ports: [{ ...host.ports[0], mac: '03:00:00:00:00:0a' }] }); // multicast
    bad({ ports: [{ ...host.ports[0], ips: ['192.0.2.300'] }] });
    bad({ ports: [host.ports[0], host.ports[0]] });
    bad({ trunk: [4095] });
    bad({ uplink: 'eth9' }); // missing
    bad({ uplink: 'kt0000000000e0' });
    bad({}, observed([link('kbr0'), link('eth1')])); // kbr0 is not a bridge
  });

  it('reads a converged host back as its config', () => {
    assert.deepEqual(readHost(convergedHost(), 'h1'), host);
    assert.equal(readHost(convergedHost(), 'h2'), null);
  });
});

describe('linux SDN planner: edge', () => {
  const edge: EdgeConfig = { edgeId: 'e1', bridge: 'kedge0', uplink: { port: 'up0', vlans: [100, 200] }, downlinks: [{ port: 'dn1', hostId: 'h1', vlans: [100] }, { port: 'dn2', hostId: 'h2', vlans: [200] }] };
  it('trunks exactly the listed VLANs per port and detaches unknown ports', () => {
    const obs = observed(
      [bridgeLink('kedge0', 'kumo:edge:e1'), link('up0', { master: 'kedge0', alias: 'kumo:uplink' }), link('dn1', { master: 'kedge0', alias: 'kumo:downlink:h1' }), link('dn2', { master: 'kedge0', alias: 'kumo:downlink:h2' }), link('dn3', { master: 'kedge0' })],
      { up0: [T(100), T(200)], dn1: [T(100), T(200)], dn2: [T(200)] },
    );
    const p = planEdge(edge, obs);
    assert.deepEqual(p.ip, ['link set dev dn3 nomaster']);
    assert.deepEqual(p.bridge, ['vlan del dev dn1 vid 200']);
  });
});

describe('linux SDN planner: gateway', () => {
  const gw: GatewayConfig = {
    zoneId: 'z1', bridge: 'kgw0', vxlan: 'kvx0', underlayIp: '192.0.2.1', downlink: { port: 'dl0', vlans: [100, 101] },
    maps: [{ vlan: 100, vni: 5000 }, { vlan: 101, vni: 6000 }], flood: ['192.0.2.2', '192.0.2.3'], addresses: [{ vlan: 100, address: '198.51.100.1/24' }],
  };
  const vx = () => link('kvx0', { kind: 'vxlan', master: 'kgw0', data: { external: true, local: '192.0.2.1', port: 4789 }, slaveData: { vlan_tunnel: true } });
  function converged(): Observed {
    return observed(
      [bridgeLink('kgw0', 'kumo:gateway:z1'), link('dl0', { master: 'kgw0', alias: 'kumo:downlink' }), vx(), link('kgw0.100', { kind: 'vlan', parent: 'kgw0', data: { id: 100 } })],
      { kgw0: [T(100)], dl0: [T(100), T(101)], kvx0: [T(100), T(101)] },
      {
        tunnels: new Map([['kvx0', new Map([[100, 5000], [101, 6000]])]]),
        flood: ['192.0.2.2', '192.0.2.3'].flatMap((dst) => [{ dst, vni: 5000 }, { dst, vni: 6000 }]),
        addrs: new Map([['kgw0.100', ['198.51.100.1/24']]]),
      },
    );
  }

  it('builds a gateway from nothing: bridge, external VXLAN with vlan_tunnel, per-VNI flood entries, gateway address', () => {
    const p = planGateway(gw, observed([link('dl0')]));
    assert.deepEqual(p.ip.filter((l) => /kvx0|kgw0\.100/.test(l)), [
      'link add kvx0 type vxlan dstport 4789 external local 192.0.2.1 learning', 'link set dev kvx0 master kgw0', 'link set dev kvx0 up',
      'link add link kgw0 name kgw0.100 type vlan id 100', 'link set dev kgw0.100 up', 'addr add 198.51.100.1/24 dev kgw0.100',
    ]);
    assert.deepEqual(p.bridge, [
      'vlan add dev kgw0 vid 100 self', 'vlan add dev dl0 vid 100', 'vlan add dev dl0 vid 101',
      'link set dev kvx0 vlan_tunnel on', 'vlan add dev kvx0 vid 100', 'vlan add dev kvx0 vid 101',
      'vlan add dev kvx0 vid 100 tunnel_info id 5000', 'vlan add dev kvx0 vid 101 tunnel_info id 6000',
      'fdb append 00:00:00:00:00:00 dev kvx0 dst 192.0.2.2 src_vni 5000 self permanent', 'fdb append 00:00:00:00:00:00 dev kvx0 dst 192.0.2.2 src_vni 6000 self permanent',
      'fdb append 00:00:00:00:00:00 dev kvx0 dst 192.0.2.3 src_vni 5000 self permanent', 'fdb append 00:00:00:00:00:00 dev kvx0 dst 192.0.2.3 src_vni 6000 self permanent',
    ]);
  });

  it('has nothing to do on a converged gateway, and reads it back as its config', () => {
    assert.deepEqual(nothing(planGateway(gw, converged())), []);
    assert.deepEqual(readGateway(converged(), 'z1'), gw);
  });

  it('follows a VNI change, a dropped peer, a dropped address and a moved underlay address', () => {
    const c: GatewayConfig = { ...gw, maps: [{ vlan: 100, vni: 5000 }, { vlan: 101, vni: 7000 }], flood: ['192.0.2.2'], addresses: [] };
    const p = planGateway(c, converged());
    assert.deepEqual(p.ip, ['link del dev kgw0.100']);
    assert.deepEqual(p.bridge, [
      'vlan del dev kgw0 vid 100 self', 'vlan del dev kvx0 vid 101 tunnel_info id 6000', 'vlan add dev kvx0 vid 101 tunnel_info id 7000',
      'fdb append 00:00:00:00:00:00 dev kvx0 dst 192.0.2.2 src_vni 7000 self permanent',
      'fdb del 00:00:00:00:00:00 dev kvx0 dst 192.0.2.2 src_vni 6000 self', 'fdb del 00:00:00:00:00:00 dev kvx0 dst 192.0.2.3 src_vni 5000 self',
      'fdb del 00:00:00:00:00:00 dev kvx0 dst 192.0.2.3 src_vni 6000 self',
    ]);
    const moved = planGateway({ ...gw, underlayIp: '192.0.2.9' }, converged());
    assert.deepEqual(moved.ip.slice(0, 3), ['link del dev kvx0', 'link add kvx0 type vxlan dstport 4789 external local 192.0.2.9 learning', 'link set dev kvx0 master kgw0']);
  });

  it('refuses duplicate VLANs or VNIs, its own address as a peer, and bare gateway addresses', () => {
    assert.throws(() => planGateway({ ...gw, maps: [{ vlan: 100, vni: 5000 }, { vlan: 101, vni: 5000 }] }, converged()), SdnDriverError);
    assert.throws(() => planGateway({ ...gw, flood: ['192.0.2.1'] }, converged()), SdnDriverError);
    assert.throws(() => planGateway({ ...gw, addresses: [{ vlan: 100, address: '198.51.100.1' }] }, converged()), SdnDriverError);
  });
});

describe('linux SDN parsers (recorded iproute2 6.1 / nftables 1.0.6 output)', () => {
  it('reads links, VLANs with ranges, tunnels and flood entries', () => {
    const links = parseLinks([
      { ifname: 'kvx0', flags: ['BROADCAST', 'UP'], master: 'kgw0', linkinfo: { info_kind: 'vxlan', info_data: { external: true, local: '192.0.2.1', port: 4789 }, info_slave_kind: 'bridge', info_slave_data: { vlan_tunnel: true } } },
      { ifname: 'kgw0.100', link: 'kgw0', flags: ['M-DOWN'], ifalias: 'x', linkinfo: { info_kind: 'vlan', info_data: { protocol: '802.1Q', id: 100 } } },
      { ifname: 'x0', link: 'x1', flags: ['UP'], linkinfo: { info_kind: 'veth' } },
    ]);
    assert.equal(links.get('kvx0')!.slaveData.vlan_tunnel, true);
    assert.deepEqual([links.get('kgw0.100')!.parent, links.get('kgw0.100')!.up, links.get('kgw0.100')!.alias], ['kgw0', false, 'x']);
    assert.equal(links.get('x0')!.parent, null);
    assert.deepEqual(parseVlans([{ ifname: 'eth1', vlans: [{ vlan: 1, flags: ['PVID', 'Egress Untagged'] }, { vlan: 10, vlanEnd: 12 }] }]).get('eth1'), [P(1), T(10), T(11), T(12)]);
    assert.deepEqual([...parseTunnels([{ ifname: 'kvx0', tunnels: [{ vlan: 100, tunid: 5000 }, { vlan: 200, vlanEnd: 201, tunid: 7000, tunidEnd: 7001 }] }]).get('kvx0')!], [[100, 5000], [200, 7000], [201, 7001]]);
    assert.deepEqual(parseFlood([
      { mac: '00:00:00:00:00:00', dst: '192.0.2.2', src_vni: 5000, flags: ['self'], state: 'permanent' },
      { mac: '02:00:00:00:00:0b', dst: '192.0.2.2', src_vni: 5000, flags: ['self'], state: '' },
      { mac: '00:00:00:00:00:00', vlan: 100, master: 'kgw0', flags: [], state: 'permanent' },
    ]), [{ dst: '192.0.2.2', vni: 5000 }]);
  });

  it('reads the anti-spoofing table and plans no change when it matches', () => {
    const doc = { nftables: [
      { metainfo: { version: '1.0.6' } }, { table: { family: 'bridge', name: 'kumo' } },
      { set: { family: 'bridge', name: 'macs', table: 'kumo', type: ['ifname', 'ether_addr'], elem: [{ concat: [A, '02:00:00:00:00:0a'] }] } },
      { set: { family: 'bridge', name: 'ips', table: 'kumo', type: ['ifname', 'ipv4_addr'] } },
      { chain: { family: 'bridge', table: 'kumo', name: 'ports_v1', hook: 'prerouting', prio: -200 } },
      ...Array.from({ length: 11 }, () => ({ rule: { family: 'bridge', table: 'kumo', chain: 'ports_v1', expr: [] } })),
    ] };
    const st = parseNft(doc)!;
    assert.equal(st.chainOk, true);
    assert.deepEqual([...st.macs!], [`${A} 02:00:00:00:00:0a`]);
    assert.deepEqual(planNft(st, desiredElements([{ port: A, vlan: 100, mac: '02:00:00:00:00:0A', ips: [] }])), { script: null, changes: [] });
    const tampered = parseNft({ nftables: doc.nftables.slice(0, -1) });
    assert.equal(tampered!.chainOk, false);
    assert.match(planNft(tampered, desiredElements([])).script!, /^add table bridge kumo\ndelete table bridge kumo\n/);
  });
});
