import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tapName } from '../../src/compute/qemu/taps.js';
import { SdnCompileError, SdnState, applyChange, compile, diffDevice, isEmptyChange } from '../../src/sdn/compiler/index.js';
import type { Placement, Topology } from '../../src/sdn/types.js';

/** Two zones with a gateway each (z1 is the gateway zone); z1 has two edges, one edgeless host. */
const topo: Topology = {
  zones: [
    { zoneId: 'z2', gateway: { underlayIp: '198.51.100.2', downlink: 'gw-down' }, gatewayZone: false },
    { zoneId: 'z1', gateway: { underlayIp: '198.51.100.1', downlink: 'gw-down' }, gatewayZone: true },
    { zoneId: 'z3', gateway: null, gatewayZone: false },
  ],
  edges: [
    { edgeId: 'e1', zoneId: 'z1', uplink: 'up0', macBudget: 100 },
    { edgeId: 'e2', zoneId: 'z1', uplink: 'up0', macBudget: 100 },
    { edgeId: 'e3', zoneId: 'z2', uplink: 'up0', macBudget: 100 },
  ],
  hosts: [
    { hostId: 'h2', zoneId: 'z1', edge: { edgeId: 'e1', port: 'p2' }, uplink: 'eth0' },
    { hostId: 'h1', zoneId: 'z1', edge: { edgeId: 'e1', port: 'p1' }, uplink: 'eth0' },
    { hostId: 'h3', zoneId: 'z2', edge: { edgeId: 'e3', port: 'p1' }, uplink: 'eth0' },
    { hostId: 'h4', zoneId: 'z1', edge: null, uplink: 'eth0' },
  ],
};

const VM_A = 'vm-00000000000a', VM_B = 'vm-00000000000b', VM_C = 'vm-00000000000c';
const placement: Placement = {
  networks: [
    { networkId: 'n2', vni: 5002, zoneVlans: { z1: 11 }, gateway: '10.2.0.1', prefix: 20 },
    { networkId: 'n1', vni: 5001, zoneVlans: { z2: 7, z1: 10 }, gateway: '10.1.0.1', prefix: 20 },
  ],
  nics: [
    { vmId: VM_B, slot: 0, hostId: 'h2', networkId: 'n1', mac: '52:54:00:00:00:0B', ips: ['10.1.0.9', '10.1.0.10'] },
    { vmId: VM_A, slot: 1, hostId: 'h1', networkId: 'n2', mac: '52:54:00:00:01:0a', ips: [] },
    { vmId: VM_A, slot: 0, hostId: 'h1', networkId: 'n1', mac: '52:54:00:00:00:0a', ips: ['10.1.0.5'] },
    { vmId: VM_C, slot: 0, hostId: 'h3', networkId: 'n1', mac: '52:54:00:00:00:0c', ips: ['10.1.0.6'] },
  ],
};

test('compile: a worked example, every device', () => {
  const c = compile(topo, placement);
  assert.deepEqual(c.hosts.map((h) => h.hostId), ['h1', 'h2', 'h3', 'h4']);
  assert.deepEqual(c.hosts[0], {
    hostId: 'h1', bridge: 'kbr0', uplink: 'eth0', trunk: [10, 11],
    ports: [
      { port: tapName(VM_A, 0), vlan: 10, mac: '52:54:00:00:00:0a', ips: ['10.1.0.5'] },
      { port: tapName(VM_A, 1), vlan: 11, mac: '52:54:00:00:01:0a', ips: [] },
    ],
  });
  // MAC lower-cased, IPs sorted (as text): the same NIC always compiles to the same rule.
  assert.deepEqual(c.hosts[1].ports, [{ port: 'kt00000000000b0', vlan: 10, mac: '52:54:00:00:00:0b', ips: ['10.1.0.10', '10.1.0.9'] }]);
  assert.deepEqual(c.hosts[2].trunk, [7]);
  assert.deepEqual(c.hosts[3], { hostId: 'h4', bridge: 'kbr0', uplink: 'eth0', trunk: [], ports: [] });

  assert.deepEqual(c.edges, [
    { edgeId: 'e1', bridge: 'kedge0', uplink: { port: 'up0', vlans: [10, 11] }, downlinks: [
      { port: 'p1', hostId: 'h1', vlans: [10, 11] }, { port: 'p2', hostId: 'h2', vlans: [10] },
    ] },
    { edgeId: 'e2', bridge: 'kedge0', uplink: { port: 'up0', vlans: [] }, downlinks: [] },
    { edgeId: 'e3', bridge: 'kedge0', uplink: { port: 'up0', vlans: [7] }, downlinks: [{ port: 'p1', hostId: 'h3', vlans: [7] }] },
  ]);

  assert.deepEqual(c.gateways, [
    {
      zoneId: 'z1', bridge: 'kgw0', vxlan: 'kvx0', underlayIp: '198.51.100.1', downlink: { port: 'gw-down', vlans: [10, 11] },
      maps: [{ vlan: 10, vni: 5001 }, { vlan: 11, vni: 5002 }], flood: ['198.51.100.2'],
      addresses: [{ vlan: 10, address: '10.1.0.1/20' }, { vlan: 11, address: '10.2.0.1/20' }],
    },
    {
      zoneId: 'z2', bridge: 'kgw0', vxlan: 'kvx0', underlayIp: '198.51.100.2', downlink: { port: 'gw-down', vlans: [7] },
      maps: [{ vlan: 7, vni: 5001 }], flood: ['198.51.100.1'], addresses: [],
    },
  ]);
});

test('compile: the same input in another order gives byte-identical JSON', () => {
  const shuffled: Placement = { networks: [...placement.networks].reverse(), nics: [...placement.nics].reverse() };
  const t2: Topology = { zones: [...topo.zones].reverse(), edges: [...topo.edges].reverse(), hosts: [...topo.hosts].reverse() };
  assert.equal(JSON.stringify(compile(t2, shuffled)), JSON.stringify(compile(topo, placement)));
});

test('compile: a NIC whose network has no VLAN in its zone is refused, every such NIC listed', () => {
  const p: Placement = {
    networks: placement.networks,
    nics: [
      ...placement.nics,
      { vmId: VM_C, slot: 1, hostId: 'h3', networkId: 'n2', mac: '52:54:00:00:01:0c', ips: [] },
      { vmId: 'vm-00000000000d', slot: 0, hostId: 'h3', networkId: 'n2', mac: '52:54:00:00:00:0d', ips: [] },
    ],
  };
  assert.throws(() => compile(topo, p), (e: unknown) => {
    assert.ok(e instanceof SdnCompileError);
    assert.deepEqual(e.problems, [
      `nic ${VM_C}/1 on host h3: network n2 has no VLAN in zone z2`,
      'nic vm-00000000000d/0 on host h3: network n2 has no VLAN in zone z2',
    ]);
    assert.match(e.message, /^SDN config does not compile \(2 problems\): nic vm-00000000000c\/1/);
    return true;
  });
});

test('compile: inconsistent inputs are listed together', () => {
  const t: Topology = {
    zones: [...topo.zones, { zoneId: 'z4', gateway: { underlayIp: '198.51.100.1', downlink: 'gw-down' }, gatewayZone: true }],
    edges: topo.edges,
    hosts: [...topo.hosts, { hostId: 'h5', zoneId: 'z2', edge: { edgeId: 'e1', port: 'p1' }, uplink: 'eth0' }],
  };
  const p: Placement = {
    networks: [...placement.networks, { networkId: 'n3', vni: 5001, zoneVlans: { z1: 10, z9: 5000 }, gateway: '10.3.0.1', prefix: 20 }],
    nics: [
      ...placement.nics,
      { ...placement.nics[0] },
      { vmId: VM_C, slot: 0, hostId: 'h9', networkId: 'n1', mac: 'nonsense', ips: ['fe80::1'] },
      { vmId: VM_C, slot: 99, hostId: 'h3', networkId: 'n8', mac: '52:54:00:00:00:0c', ips: [] },
    ],
  };
  assert.throws(() => compile(t, p), (e: unknown) => {
    assert.ok(e instanceof SdnCompileError);
    assert.deepEqual(e.problems, [
      'zones z1 and z4 are both the gateway zone',
      'zones z1 and z4 give their gateways the same underlay address 198.51.100.1',
      'host h5 is in zone z2 but its edge e1 is in zone z1',
      'hosts h1 and h5 share port p1 on edge e1',
      'network n3: VLAN 5000 in unknown zone z9',
      'network n3: VLAN 5000 in zone z9 is outside 2..4094',
      'networks n1 and n3 share VNI 5001',
      'networks n1 and n3 share VLAN 10 in zone z1',
      `nic ${VM_C}/0 on host h9: unknown host`,
      `nic ${VM_C}/0 on host h9: MAC "nonsense" is not of the form 52:54:00:12:34:56`,
      `nic ${VM_C}/0 on host h9: "fe80::1" is not an IPv4 address (the anti-spoofing rules are IPv4 only)`,
      `nic ${VM_C}/99 on host h3: NIC slot 99 is outside 0..35`,
      `nic ${VM_C}/99 on host h3: unknown network n8`,
      `nic ${VM_B}/0 is placed twice on host h2`,
    ]);
    return true;
  });
});

test('diffDevice: minimal changes, empty when equal, create and delete', () => {
  const before = compile(topo, placement);
  const after = compile(topo, { ...placement, nics: placement.nics.filter((n) => n.vmId !== VM_B) });
  const h2 = diffDevice({ kind: 'host', config: before.hosts[1] }, { kind: 'host', config: after.hosts[1] });
  assert.deepEqual(h2, { kind: 'host', id: 'h2', op: 'update', trunk: { added: [], removed: [10] }, ports: { added: [], removed: ['kt00000000000b0'], changed: [] } });
  // h1 still uses VLAN 10, so e1's uplink keeps it; only p2's downlink loses it.
  assert.deepEqual(diffDevice({ kind: 'edge', config: before.edges[0] }, { kind: 'edge', config: after.edges[0] }), {
    kind: 'edge', id: 'e1', op: 'update', uplink: { vlans: { added: [], removed: [] } },
    downlinks: { added: [], removed: [], changed: [{ port: 'p2', hostId: 'h2', vlans: { added: [], removed: [10] } }] },
  });
  const same = diffDevice({ kind: 'gateway', config: before.gateways[0] }, { kind: 'gateway', config: after.gateways[0] });
  assert.ok(isEmptyChange(same));

  const created = diffDevice(null, { kind: 'host', config: before.hosts[0] });
  assert.equal(created.op, 'create');
  assert.deepEqual(applyChange(null, created), { kind: 'host', config: before.hosts[0] });
  const deleted = diffDevice({ kind: 'edge', config: before.edges[0] }, null);
  assert.equal(deleted.op, 'delete');
  assert.equal(applyChange({ kind: 'edge', config: before.edges[0] }, deleted), null);
  assert.throws(() => diffDevice(null, null), /both null/);
  assert.throws(() => diffDevice({ kind: 'host', config: before.hosts[0] }, { kind: 'host', config: before.hosts[1] }), /host h1 compared with host h2/);
});

test('SdnState: one VM start touches its host and edge only; its stop undoes it', () => {
  const s = new SdnState(topo, placement);
  const nic = { vmId: 'vm-00000000000e', slot: 0, hostId: 'h2', networkId: 'n2', mac: '52:54:00:00:00:0e', ips: ['10.2.0.5'] };
  const start = s.addNic(nic);
  assert.deepEqual(start, [
    { kind: 'host', id: 'h2', op: 'update', trunk: { added: [11], removed: [] }, ports: { added: [{ port: 'kt00000000000e0', vlan: 11, mac: '52:54:00:00:00:0e', ips: ['10.2.0.5'] }], removed: [], changed: [] } },
    // e1 already carries 11 (h1 has it): the uplink does not change.
    { kind: 'edge', id: 'e1', op: 'update', uplink: { vlans: { added: [], removed: [] } }, downlinks: { added: [], removed: [], changed: [{ port: 'p2', hostId: 'h2', vlans: { added: [11], removed: [] } }] } },
  ]);
  assert.deepEqual(s.config(), compile(topo, { ...placement, nics: [...placement.nics, nic] }));
  s.removeNic(nic.vmId, 0);
  assert.deepEqual(s.config(), compile(topo, placement));
});

test('SdnState: a NIC on two hosts while migrating; removing it then needs the host', () => {
  const s = new SdnState(topo, placement);
  const moving = { ...placement.nics[3], hostId: 'h3' };
  assert.throws(() => s.addNic(moving), /placed twice on host h3/);
  s.addNic({ ...placement.nics[0], hostId: 'h1' });
  assert.throws(() => s.removeNic(VM_B, 0), /on hosts h1 and h2: name the one/);
  s.removeNic(VM_B, 0, 'h2');
  assert.deepEqual(s.config().hosts[1].ports, []);
  assert.throws(() => s.removeNic(VM_B, 0, 'h2'), /not placed on host h2/);
});

test('SdnState: zone VLANs change only the gateway, and never under live ports', () => {
  const s = new SdnState(topo, placement);
  assert.throws(() => s.setZoneVlan('n1', 'z2', null), /has 1 NIC\(s\) in zone z2: its VLAN there cannot go/);
  assert.throws(() => s.setZoneVlan('n2', 'z1', 10), /networks n1 and n2 share VLAN 10 in zone z1/);
  assert.deepEqual(s.setZoneVlan('n2', 'z2', 8), [{
    kind: 'gateway', id: 'z2', op: 'update', downlink: { added: [8], removed: [] }, maps: { added: [{ vlan: 8, vni: 5002 }], removed: [] },
    flood: { added: [], removed: [] }, addresses: { added: [], removed: [] },
  }]);
  assert.deepEqual(s.setZoneVlan('n2', 'z2', 8), []);
  assert.deepEqual(s.setZoneVlan('n2', 'z3', 4), [], 'z3 has no gateway: nothing to program');
  assert.throws(() => s.removeNetwork('n2'), /still has NICs in zone z1 \(1\)/);
  s.removeNic(VM_A, 1);
  const gone = s.removeNetwork('n2');
  assert.deepEqual(gone.map((c) => c.id), ['z1', 'z2']);
  assert.deepEqual(gone[0].kind === 'gateway' && gone[0].addresses.removed, [{ vlan: 11, address: '10.2.0.1/20' }]);
  assert.deepEqual(s.config(), compile(topo, s.placement()));
});
