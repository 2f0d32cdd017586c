import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SdnCompileError, SdnState, applyChange, compile, diffDevice, isEmptyChange, type DeviceChange } from '../../src/sdn/compiler/index.js';
import type { DesiredConfig, DeviceConfig, PlacedNetwork, PlacedNic, Placement, Topology } from '../../src/sdn/types.js';

/* -------------------------------------------------------------- generators */

const ZONES = ['z0', 'z1', 'z2'];
const VMS = ['vm-000000000001', 'vm-000000000002', 'vm-000000000003', 'vm-000000000004', 'some-other-vm'];
const NETS = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5'];
/** Few VLAN IDs, so that two networks often want the same one. */
const vlanArb = fc.integer({ min: 2, max: 10 });

const topologyArb: fc.Arbitrary<Topology> = fc.record({
  nZones: fc.integer({ min: 1, max: 3 }),
  gateways: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  gatewayZone: fc.integer({ min: -1, max: 2 }),
  edgesPerZone: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 3, maxLength: 3 }),
  hosts: fc.array(fc.record({ zone: fc.nat(), edge: fc.nat(), wired: fc.boolean() }), { minLength: 1, maxLength: 7 }),
}).map(({ nZones, gateways, gatewayZone, edgesPerZone, hosts }) => {
  const zones = ZONES.slice(0, nZones).map((zoneId, i) => ({
    zoneId, gateway: gateways[i] ? { underlayIp: `192.0.2.${i + 1}`, downlink: 'gwd' } : null, gatewayZone: i === gatewayZone,
  }));
  const edges = zones.flatMap((z, i) => Array.from({ length: edgesPerZone[i] }, (_, j) => ({ edgeId: `e${i}${j}`, zoneId: z.zoneId, uplink: 'up0', macBudget: 50 })));
  return {
    zones, edges,
    hosts: hosts.map((h, i) => {
      const zoneId = zones[h.zone % zones.length].zoneId;
      const mine = edges.filter((e) => e.zoneId === zoneId);
      const edge = h.wired && mine.length ? { edgeId: mine[h.edge % mine.length].edgeId, port: `p${i}` } : null;
      return { hostId: `h${i}`, zoneId, edge, uplink: 'eth0' };
    }),
  };
});

const networkArb = (id: string, zones: readonly string[]): fc.Arbitrary<PlacedNetwork> => fc.record({
  vni: fc.integer({ min: 4096, max: 4103 }),
  vlans: fc.array(fc.option(vlanArb, { freq: 4, nil: undefined }), { minLength: zones.length, maxLength: zones.length }),
}).map(({ vni, vlans }) => ({
  networkId: id, vni, gateway: `10.${NETS.indexOf(id)}.0.1`, prefix: 20,
  zoneVlans: Object.fromEntries(zones.flatMap((z, i) => (vlans[i] === undefined ? [] : [[z, vlans[i]]]))),
}));

const nicArb = (hosts: readonly string[], missing = 'h-missing'): fc.Arbitrary<PlacedNic> => fc.record({
  vmId: fc.constantFrom(...VMS), slot: fc.integer({ min: 0, max: 2 }), hostId: fc.constantFrom(...hosts, missing),
  networkId: fc.constantFrom(...NETS), ips: fc.array(fc.integer({ min: 2, max: 9 }).map((i) => `10.0.0.${i}`), { maxLength: 2 }),
}).map((n) => ({ ...n, mac: `52:54:00:00:0${n.slot}:0${VMS.indexOf(n.vmId)}` }));

/** Drops what would make a placement invalid: shared VNIs and zone VLANs, NICs without a VLAN, duplicates. */
function makeValid(t: Topology, nets: PlacedNetwork[], nics: PlacedNic[]): Placement {
  const vnis = new Set<number>(), taken = new Set<string>();
  const networks = nets.filter((n) => !vnis.has(n.vni) && vnis.add(n.vni)).map((n) => {
    const zoneVlans: Record<string, number> = {};
    for (const [z, v] of Object.entries(n.zoneVlans)) {
      if (t.zones.some((x) => x.zoneId === z) && !taken.has(`${z}:${v}`)) { taken.add(`${z}:${v}`); zoneVlans[z] = v; }
    }
    return { ...n, zoneVlans };
  });
  const zoneOf = new Map(t.hosts.map((h) => [h.hostId, h.zoneId]));
  const seen = new Set<string>();
  return {
    networks,
    nics: nics.filter((c) => {
      const z = zoneOf.get(c.hostId), key = `${c.hostId}/${c.vmId}/${c.slot}`;
      const ok = z !== undefined && networks.find((n) => n.networkId === c.networkId)?.zoneVlans[z] !== undefined && !seen.has(key);
      if (ok) seen.add(key);
      return ok;
    }),
  };
}

/** Points a NIC at a network holding a VLAN in its host's zone, when there is one (most generated NICs are then valid). */
function steerNic(nic: PlacedNic, pick: number, t: Topology, networks: readonly PlacedNetwork[]): PlacedNic {
  const zone = t.hosts.find((h) => h.hostId === nic.hostId)?.zoneId;
  const fit = networks.filter((n) => zone !== undefined && n.zoneVlans[zone] !== undefined);
  return fit.length ? { ...nic, networkId: fit[pick % fit.length].networkId } : nic;
}

const worldArb = topologyArb.chain((t) => fc.record({
  t: fc.constant(t),
  nets: fc.subarray(NETS, { minLength: 2 }).chain((ids) => fc.tuple(...ids.map((id) => networkArb(id, t.zones.map((z) => z.zoneId))))),
  nics: fc.array(fc.tuple(nicArb(t.hosts.map((h) => h.hostId), t.hosts[0].hostId), fc.nat()), { maxLength: 20 }),
}).map(({ t, nets, nics }) => {
  const p = makeValid(t, nets as PlacedNetwork[], []);
  return { t, p: makeValid(t, p.networks, nics.map(([nic, pick]) => steerNic(nic, pick, t, p.networks))) };
}));

/* -------------------------------------------------------------- helpers */

const devices = (c: DesiredConfig): Map<string, DeviceConfig> => new Map<string, DeviceConfig>([
  ...c.hosts.map((config) => [`host:${config.hostId}`, { kind: 'host', config }] as const),
  ...c.edges.map((config) => [`edge:${config.edgeId}`, { kind: 'edge', config }] as const),
  ...c.gateways.map((config) => [`gateway:${config.zoneId}`, { kind: 'gateway', config }] as const),
]);

function shuffle<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed | 0;
  for (let i = out.length - 1; i > 0; i--) {
    s = Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9 | 0;
    const j = Math.abs(s) % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/* -------------------------------------------------------------- properties */

test('determinism: any order of the same input compiles to byte-identical JSON', () => {
  fc.assert(fc.property(worldArb, fc.integer(), ({ t, p }, seed) => {
    const t2: Topology = { zones: shuffle(t.zones, seed), edges: shuffle(t.edges, seed + 1), hosts: shuffle(t.hosts, seed + 2) };
    const p2: Placement = {
      networks: shuffle(p.networks, seed + 3).map((n) => ({ ...n, zoneVlans: Object.fromEntries(shuffle(Object.entries(n.zoneVlans), seed)) })),
      nics: shuffle(p.nics, seed + 4).map((n) => ({ ...n, ips: shuffle(n.ips, seed) })),
    };
    assert.equal(JSON.stringify(compile(t2, p2)), JSON.stringify(compile(t, p)));
  }), { numRuns: 300 });
});

test('trunks: a host trunks exactly its ports\' VLANs; an edge exactly its hosts\' (and their union up)', () => {
  fc.assert(fc.property(worldArb, ({ t, p }) => {
    const c = compile(t, p);
    const byHost = new Map(c.hosts.map((h) => [h.hostId, h]));
    for (const h of c.hosts) {
      assert.deepEqual(h.trunk, [...new Set(h.ports.map((x) => x.vlan))].sort((a, b) => a - b));
      assert.equal(h.ports.length, p.nics.filter((n) => n.hostId === h.hostId).length);
    }
    assert.equal(c.hosts.length, t.hosts.length);
    for (const e of c.edges) {
      const behind = t.hosts.filter((h) => h.edge?.edgeId === e.edgeId);
      assert.deepEqual(e.downlinks.map((d) => d.hostId).sort(), behind.map((h) => h.hostId).sort());
      for (const d of e.downlinks) assert.deepEqual(d.vlans, byHost.get(d.hostId)!.trunk);
      assert.deepEqual(e.uplink.vlans, [...new Set(e.downlinks.flatMap((d) => d.vlans))].sort((a, b) => a - b));
    }
  }), { numRuns: 300 });
});

test('gateways: map every VLAN of their zone to its VNI, flood to the others, hold addresses only in the gateway zone', () => {
  fc.assert(fc.property(worldArb, ({ t, p }) => {
    const c = compile(t, p);
    assert.deepEqual(c.gateways.map((g) => g.zoneId), t.zones.filter((z) => z.gateway).map((z) => z.zoneId).sort());
    for (const g of c.gateways) {
      const z = t.zones.find((x) => x.zoneId === g.zoneId)!;
      const want = p.networks.filter((n) => n.zoneVlans[g.zoneId] !== undefined)
        .map((n) => ({ vlan: n.zoneVlans[g.zoneId], vni: n.vni })).sort((a, b) => a.vlan - b.vlan);
      assert.deepEqual(g.maps, want);
      assert.deepEqual(g.downlink.vlans, want.map((m) => m.vlan));
      assert.equal(new Set(g.maps.map((m) => m.vlan)).size, g.maps.length, 'no two networks on one VLAN in a zone');
      assert.deepEqual(g.flood, t.zones.filter((o) => o.zoneId !== g.zoneId && o.gateway).map((o) => o.gateway!.underlayIp).sort());
      assert.equal(g.addresses.length, z.gatewayZone ? g.maps.length : 0);
    }
    // Every port's VLAN is one its zone maps to the port's network.
    const zoneOf = new Map(t.hosts.map((h) => [h.hostId, h.zoneId]));
    for (const n of p.nics) {
      const net = p.networks.find((x) => x.networkId === n.networkId)!;
      const port = c.hosts.find((h) => h.hostId === n.hostId)!.ports.find((x) => x.mac === n.mac.toLowerCase() && x.vlan === net.zoneVlans[zoneOf.get(n.hostId)!]);
      assert.ok(port, `nic ${n.vmId}/${n.slot} has its port on its network's VLAN`);
    }
  }), { numRuns: 300 });
});

test('compile refuses two networks on one VLAN in a zone, and a NIC whose network has no VLAN there', () => {
  fc.assert(fc.property(worldArb, ({ t, p }) => {
    const pairs = p.networks.flatMap((a) => p.networks.filter((b) => b !== a).flatMap((b) =>
      Object.keys(a.zoneVlans).map((z) => ({ a, b, z }))));
    fc.pre(pairs.length > 0 || p.nics.length > 0);
    if (pairs.length) {
      const { a, b, z } = pairs[0];
      const bad = p.networks.map((n) => (n === b ? { ...n, zoneVlans: { ...n.zoneVlans, [z]: a.zoneVlans[z] } } : n));
      assert.throws(() => compile(t, { ...p, networks: bad }), new RegExp(`networks ${a.networkId} and ${b.networkId} share VLAN ${a.zoneVlans[z]} in zone ${z}|networks ${b.networkId} and ${a.networkId} share VLAN`));
    }
    if (p.nics.length) {
      const nic = p.nics[0], zone = t.hosts.find((h) => h.hostId === nic.hostId)!.zoneId;
      const stripped = p.networks.map((n) => {
        if (n.networkId !== nic.networkId) return n;
        const { [zone]: _gone, ...rest } = n.zoneVlans;
        return { ...n, zoneVlans: rest };
      });
      assert.throws(() => compile(t, { ...p, networks: stripped }), (e: unknown) => e instanceof SdnCompileError
        && e.problems.includes(`nic ${nic.vmId}/${nic.slot} on host ${nic.hostId}: network ${nic.networkId} has no VLAN in zone ${zone}`));
    }
  }), { numRuns: 300 });
});

test('diffDevice: apply(before, diff) = after, applying it again changes nothing, diff(x, x) is empty', () => {
  const pairArb = worldArb.chain(({ t, p }) => fc.record({ t: fc.constant(t), p: fc.constant(p), q: worldArb.map((w) => w.p) }));
  fc.assert(fc.property(pairArb, ({ t, p, q }) => {
    const before = devices(compile(t, p)), after = devices(compile(t, makeValid(t, q.networks, q.nics)));
    for (const key of new Set([...before.keys(), ...after.keys()])) {
      const b = before.get(key) ?? null, a = after.get(key) ?? null;
      const change = diffDevice(b, a);
      const once = applyChange(b, change);
      assert.deepEqual(once, a);
      assert.deepEqual(applyChange(once, change), a, 'applying the change twice');
      assert.equal(isEmptyChange(change), JSON.stringify(b) === JSON.stringify(a));
      if (a) assert.ok(isEmptyChange(diffDevice(a, a)));
      // A second diff against the applied result finds nothing left to do.
      if (a && once) assert.ok(isEmptyChange(diffDevice(once, a)));
    }
  }), { numRuns: 300 });
});

/* -------------------------------------------------------------- incremental == full */

/**
 * `steer`, when set, aims the operation at the current state (a network with a VLAN in the NIC's
 * zone, a NIC that is placed, a VLAN free in the zone), so that most operations succeed; the rest
 * stay random and mostly exercise refusals.
 */
type Op = { steer?: number } & (
  | { op: 'addNic'; nic: PlacedNic }
  | { op: 'removeNic'; vmId: string; slot: number; hostId?: string }
  | { op: 'setZoneVlan'; networkId: string; zoneId: string; vlan: number | null }
  | { op: 'addNetwork'; net: PlacedNetwork }
  | { op: 'removeNetwork'; networkId: string });

function steer(o: Op, s: SdnState, t: Topology): Op {
  if (o.steer === undefined) return o;
  const p = s.placement(), k = o.steer;
  switch (o.op) {
    case 'addNic': return { ...o, nic: steerNic(o.nic, k, t, p.networks) };
    case 'removeNic': {
      if (!p.nics.length) return o;
      const nic = p.nics[k % p.nics.length];
      return { ...o, vmId: nic.vmId, slot: nic.slot, hostId: k % 3 === 0 ? undefined : nic.hostId };
    }
    case 'setZoneVlan': {
      const networkId = p.networks.length ? p.networks[k % p.networks.length].networkId : o.networkId;
      if (o.vlan === null) return { ...o, networkId };
      const used = new Set(p.networks.map((n) => n.zoneVlans[o.zoneId]));
      const free = [2, 3, 4, 5, 6, 7, 8, 9, 10].filter((v) => !used.has(v));
      return free.length ? { ...o, networkId, vlan: free[k % free.length] } : o;
    }
    default: return o;
  }
}

const opsArb = (t: Topology): fc.Arbitrary<Op[]> => {
  const hosts = t.hosts.map((h) => h.hostId), zones = t.zones.map((z) => z.zoneId);
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: nicArb(hosts).map((nic) => ({ op: 'addNic' as const, nic })) },
    { weight: 3, arbitrary: fc.record({ vmId: fc.constantFrom(...VMS), slot: fc.integer({ min: 0, max: 2 }), hostId: fc.option(fc.constantFrom(...hosts, 'h-missing'), { nil: undefined }) }).map((r) => ({ op: 'removeNic' as const, ...r })) },
    { weight: 4, arbitrary: fc.record({ networkId: fc.constantFrom(...NETS, 'n-missing'), zoneId: fc.constantFrom(...zones, 'z-missing'), vlan: fc.option(vlanArb, { nil: null }) }).map((r) => ({ op: 'setZoneVlan' as const, ...r })) },
    { weight: 2, arbitrary: fc.constantFrom(...NETS).chain((id) => networkArb(id, zones)).map((net) => ({ op: 'addNetwork' as const, net })) },
    { weight: 1, arbitrary: fc.constantFrom(...NETS).map((networkId) => ({ op: 'removeNetwork' as const, networkId })) },
  );
  return fc.array(fc.tuple(op, fc.option(fc.nat(), { freq: 5, nil: undefined })).map(([o, k]) => ({ ...o, steer: k })), { maxLength: 40 });
};

function run(s: SdnState, o: Op): DeviceChange[] {
  switch (o.op) {
    case 'addNic': return s.addNic(o.nic);
    case 'removeNic': return s.removeNic(o.vmId, o.slot, o.hostId);
    case 'setZoneVlan': return s.setZoneVlan(o.networkId, o.zoneId, o.vlan);
    case 'addNetwork': return s.addNetwork(o.net);
    case 'removeNetwork': return s.removeNetwork(o.networkId);
  }
}

test('incremental == full: after any sequence of operations, SdnState.config() is compile() of its placement', () => {
  const arb = worldArb.chain(({ t, p }) => fc.record({ t: fc.constant(t), p: fc.constant(p), ops: opsArb(t) }));
  fc.assert(fc.property(arb, ({ t, p, ops }) => {
    const s = new SdnState(t, p);
    let current = compile(t, p);
    assert.deepEqual(s.config(), current);
    for (const raw of ops) {
      const o = steer(raw, s, t);
      let changes: DeviceChange[];
      try {
        changes = run(s, o);
      } catch (e) {
        assert.ok(e instanceof SdnCompileError, `${o.op} threw ${(e as Error).message}`);
        assert.deepEqual(s.config(), current, `a refused ${o.op} left the state as it was`);
        continue;
      }
      const next = compile(t, s.placement());
      assert.deepEqual(s.config(), next);
      // The changes returned are exactly what moves each touched device, and no device is left out.
      const devs = devices(current);
      for (const c of changes) {
        assert.ok(!isEmptyChange(c), `${o.op} returned an empty ${c.kind} change`);
        const key = `${c.kind}:${c.id}`;
        devs.set(key, applyChange(devs.get(key) ?? null, c)!);
      }
      assert.deepEqual(devs, devices(next));
      current = next;
    }
  }), { numRuns: 300 });
});
