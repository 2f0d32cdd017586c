/**
 * The linux SDN driver across zones, in namespaces this file makes (and deletes, also on failure):
 *
 *   zone A: endpoint A, C ─ host ha ─ edge ea ─ gateway ga ┐ underlay 192.0.2.0/24 (veth)
 *   zone B: endpoint B, D ─ host hb ─────────── gateway gb ┘
 *
 * Tenant 1 (VNI 5000) is VLAN 100 in zone A and VLAN 200 in zone B; tenant 2 (VNI 6000) is VLAN
 * 101 / 201 with the *same* addresses swapped (C has B's address, D has A's). Each endpoint's
 * server answers with its name, so a reply proves which network carried it. A capture on the
 * underlay shows the VXLAN VNIs; the gateways' VXLAN FDB shows the learned remote MACs. Also the
 * edge alone: trunks carry exactly their VLAN lists. Skipped where the kernel lacks VLAN filtering.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { LinuxSdnDriver } from '../../src/sdn/linux/driver.js';
import type { DeviceConfig, EdgeConfig, GatewayConfig, HostConfig } from '../../src/sdn/types.js';
import { bridgej, ipj, Lab, missingKernelFeatures, sh, tcpHello } from './netns-helpers.js';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : await missingKernelFeatures();
const tcpdump = spawnSync('tcpdump', ['--version']).status === 0;

const [A, B, C, D] = ['a', 'b', 'c', 'd'].map((x) => `kt0000000000${x}0`);
const mac = (n: number) => `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;

async function vlanView(ns: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const e of await bridgej(ns, 'vlan', 'show')) out[e.ifname] = e.vlans.map((v: { vlan: number }) => String(v.vlan));
  return out;
}

describe('linux SDN driver: edge and gateways', { skip: skip ?? false }, () => {
  it('keeps edge trunks to exactly their VLAN lists', async (t) => {
    const lab = new Lab();
    t.after(() => lab.cleanup());
    const e = await lab.ns('edge');
    for (const p of ['up0', 'dn1', 'dn2', 'dn3', 'spare']) await sh(e, 'ip', 'link', 'add', p, 'type', 'veth', 'peer', 'name', `${p}p`);
    // A bridge of that name already there, without VLAN filtering and with the kernel's default
    // PVID 1 on its port: the driver turns filtering on, then plans the VLANs in a second round.
    await sh(e, 'ip', 'link', 'add', 'kedge0', 'type', 'bridge');
    await sh(e, 'ip', 'link', 'set', 'up0', 'master', 'kedge0');
    const drv = new LinuxSdnDriver({ netns: e });
    const cfg: EdgeConfig = { edgeId: 'e1', bridge: 'kedge0', uplink: { port: 'up0', vlans: [100, 200, 300] }, downlinks: [{ port: 'dn1', hostId: 'h1', vlans: [100, 200] }, { port: 'dn2', hostId: 'h2', vlans: [300] }] };
    const r1 = await drv.apply({ kind: 'edge', config: cfg });
    assert.equal(r1.commands[0], 'ip link set dev kedge0 type bridge vlan_filtering 1 vlan_default_pvid 0');
    assert.deepEqual(await vlanView(e), { up0: ['100', '200', '300'], dn1: ['100', '200'], dn2: ['300'] });
    assert.deepEqual(await drv.read('edge', 'e1'), { kind: 'edge', config: cfg });
    assert.equal((await drv.apply({ kind: 'edge', config: cfg })).changes, 0);

    await sh(e, 'ip', 'link', 'set', 'dn3', 'master', 'kedge0'); // not in the config: detached
    const smaller: EdgeConfig = { ...cfg, uplink: { port: 'up0', vlans: [100, 300] }, downlinks: [{ ...cfg.downlinks[0], vlans: [100] }, cfg.downlinks[1]] };
    const r = await drv.apply({ kind: 'edge', config: smaller });
    assert.deepEqual(r.commands.sort(), ['bridge vlan del dev dn1 vid 200', 'bridge vlan del dev up0 vid 200', 'ip link set dev dn3 nomaster']);
    assert.deepEqual(await vlanView(e), { up0: ['100', '300'], dn1: ['100'], dn2: ['300'] });
    assert.equal((await ipj(e, 'link', 'show', 'dev', 'spare'))[0].master ?? null, null);
  });

  it('joins one network across zones through VXLAN, keeps tenants with the same addresses apart', async (t) => {
    const lab = new Lab();
    t.after(() => lab.cleanup());
    const [ha, ea, ga, gb, hb] = [await lab.ns('ha'), await lab.ns('ea'), await lab.ns('ga'), await lab.ns('gb'), await lab.ns('hb')];
    await lab.veth(ha, 'eth1', ea, 'dn1');
    await lab.veth(ea, 'up1', ga, 'dl0');
    await lab.veth(ga, 'ul0', gb, 'ul0');
    await lab.veth(gb, 'dl0', hb, 'eth1');
    await sh(ga, 'ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'ul0');
    await sh(gb, 'ip', 'addr', 'add', '192.0.2.2/24', 'dev', 'ul0');
    const va = await lab.endpoint('va', ha, A, mac(0x1a), '198.51.100.10/24');
    const vc = await lab.endpoint('vc', ha, C, mac(0x2c), '198.51.100.11/24');
    const vb = await lab.endpoint('vb', hb, B, mac(0x1b), '198.51.100.11/24');
    const vd = await lab.endpoint('vd', hb, D, mac(0x2d), '198.51.100.10/24');

    const hostA: HostConfig = { hostId: 'ha', bridge: 'kbr0', uplink: 'eth1', trunk: [100, 101], ports: [{ port: A, vlan: 100, mac: mac(0x1a), ips: ['198.51.100.10'] }, { port: C, vlan: 101, mac: mac(0x2c), ips: ['198.51.100.11'] }] };
    const edgeA: EdgeConfig = { edgeId: 'ea', bridge: 'kedge0', uplink: { port: 'up1', vlans: [100, 101] }, downlinks: [{ port: 'dn1', hostId: 'ha', vlans: [100, 101] }] };
    const gwA: GatewayConfig = { zoneId: 'za', bridge: 'kgw0', vxlan: 'kvx0', underlayIp: '192.0.2.1', downlink: { port: 'dl0', vlans: [100, 101] }, maps: [{ vlan: 100, vni: 5000 }, { vlan: 101, vni: 6000 }], flood: ['192.0.2.2'], addresses: [] };
    // Zone B is the gateway zone for tenant 1: its gateway address lives there.
    const gwB: GatewayConfig = { zoneId: 'zb', bridge: 'kgw0', vxlan: 'kvx0', underlayIp: '192.0.2.2', downlink: { port: 'dl0', vlans: [200, 201] }, maps: [{ vlan: 200, vni: 5000 }, { vlan: 201, vni: 6000 }], flood: ['192.0.2.1'], addresses: [{ vlan: 200, address: '198.51.100.1/24' }] };
    const hostB: HostConfig = { hostId: 'hb', bridge: 'kbr0', uplink: 'eth1', trunk: [200, 201], ports: [{ port: B, vlan: 200, mac: mac(0x1b), ips: ['198.51.100.11'] }, { port: D, vlan: 201, mac: mac(0x2d), ips: ['198.51.100.10'] }] };
    const devices: [string, DeviceConfig][] = [[ha, { kind: 'host', config: hostA }], [ea, { kind: 'edge', config: edgeA }], [ga, { kind: 'gateway', config: gwA }], [gb, { kind: 'gateway', config: gwB }], [hb, { kind: 'host', config: hostB }]];
    const drivers = new Map(devices.map(([ns]) => [ns, new LinuxSdnDriver({ netns: ns })]));
    for (const [ns, dev] of devices) assert.ok((await drivers.get(ns)!.apply(dev)).changes > 0);
    for (const [ns, dev] of devices) {
      assert.equal((await drivers.get(ns)!.apply(dev)).changes, 0, `${dev.kind} in ${ns} changed on a repeat`);
      const id = dev.kind === 'host' ? dev.config.hostId : dev.kind === 'edge' ? dev.config.edgeId : dev.config.zoneId;
      assert.deepEqual(await drivers.get(ns)!.read(dev.kind, id), dev, `${dev.kind} in ${ns} reads back differently`);
    }
    assert.deepEqual(await bridgej(ga, 'vlan', 'tunnelshow'), [{ ifname: 'kvx0', tunnels: [{ vlan: 100, tunid: 5000 }, { vlan: 101, tunid: 6000 }] }]);

    for (const [ns, ip, name] of [[va, '198.51.100.10', 'A'], [vb, '198.51.100.11', 'B'], [vc, '198.51.100.11', 'C'], [vd, '198.51.100.10', 'D'], [gb, '198.51.100.1', 'GW']]) await lab.server(ns, ip, 7000, name);
    const capture = tcpdump ? lab.spawnIn(ga, 'tcpdump', ['-l', '-nn', '-i', 'ul0', 'udp', 'port', '4789']) : null;
    let captured = '';
    if (capture) {
      capture.stdout!.setEncoding('utf8').on('data', (d: string) => (captured += d));
      await new Promise<void>((resolve) => capture.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve(); }));
    }

    assert.equal(await tcpHello(va, '198.51.100.11', 7000), 'B', 'tenant 1, zone A → zone B');
    assert.equal(await tcpHello(vb, '198.51.100.10', 7000), 'A', 'tenant 1, zone B → zone A');
    assert.equal(await tcpHello(vc, '198.51.100.10', 7000), 'D', 'tenant 2, zone A → zone B');
    assert.equal(await tcpHello(vd, '198.51.100.11', 7000), 'C', 'tenant 2, zone B → zone A');
    assert.equal(await tcpHello(va, '198.51.100.1', 7000), 'GW', 'tenant 1 reaches its gateway address in zone B');

    if (capture) {
      capture.kill('SIGINT');
      await once(capture, 'exit');
      const vnis = new Set([...captured.matchAll(/VXLAN[^\n]*vni (\d+)/g)].map((m) => Number(m[1])));
      assert.deepEqual([...vnis].sort(), [5000, 6000], captured);
      assert.match(captured, /vni 5000\n?[^\n]*198\.51\.100\.10\.\d+ > 198\.51\.100\.11\.7000/);
    } else {
      console.log('# tcpdump missing (Debian package tcpdump): VXLAN shown by counters and FDB only');
    }
    const vx = (await ipj(ga, '-s', 'link', 'show', 'dev', 'kvx0'))[0];
    assert.ok(vx.stats64.tx.packets > 0 && vx.stats64.rx.packets > 0, JSON.stringify(vx.stats64));
    const learned = (await bridgej(ga, 'fdb', 'show', 'dev', 'kvx0')).filter((f: { mac: string; dst?: string }) => f.dst === '192.0.2.2' && f.mac !== '00:00:00:00:00:00');
    // B and D, and the gateway interface that answered for 198.51.100.1, each learned with its own VNI.
    const gwMac = (await ipj(gb, 'link', 'show', 'dev', 'kgw0.200'))[0].address;
    assert.deepEqual(learned.map((f: { mac: string; src_vni?: number }) => `${f.mac} ${f.src_vni}`).sort(), [`${mac(0x1b)} 5000`, `${mac(0x2d)} 6000`, `${gwMac} 5000`].sort());

    // Tenant 2 leaves zone B: exactly its VLAN, mapping and flood entry go; its traffic stops.
    const gwB2: GatewayConfig = { ...gwB, downlink: { port: 'dl0', vlans: [200] }, maps: [gwB.maps[0]] };
    const r = await drivers.get(gb)!.apply({ kind: 'gateway', config: gwB2 });
    assert.deepEqual(r.commands.sort(), [
      'bridge fdb del 00:00:00:00:00:00 dev kvx0 dst 192.0.2.1 src_vni 6000 self', 'bridge vlan del dev dl0 vid 201', 'bridge vlan del dev kvx0 vid 201',
    ]);
    assert.deepEqual(await bridgej(gb, 'vlan', 'tunnelshow'), [{ ifname: 'kvx0', tunnels: [{ vlan: 200, tunid: 5000 }] }]);
    assert.equal(await tcpHello(vc, '198.51.100.10', 7000), null, 'tenant 2 still crosses');
    assert.equal(await tcpHello(va, '198.51.100.11', 7000), 'B');
  });
});
