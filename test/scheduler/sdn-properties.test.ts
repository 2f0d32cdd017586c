import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  CapacityIndex, DEFAULT_POLICY, WEIGHERS, fits, makePolicy, missingVlans, nicCount, place, snapshotView,
  type HostCapacity, type NetworkDemand, type SchedulerPolicy, type SdnView, type Snapshot, type VmDemand,
} from '../../src/scheduler/index.js';
import { sdnWorldArb, vlanOf, withVlans } from './sdn-gen.js';

const oc = DEFAULT_POLICY.overcommit;

const score = (h: HostCapacity, vm: VmDemand, p: SchedulerPolicy, sdn: SdnView): number =>
  p.weighers.reduce((s, { name, weight }) => s + weight * WEIGHERS[name](h, vm, p, sdn), 0);

const edgeOfHost = (s: Snapshot, hostId: string) => {
  const id = s.hosts.find((h) => h.hostId === hostId)!.edgeId;
  return s.edges!.find((e) => e.edgeId === id);
};
const carried = (s: Snapshot, h: HostCapacity, vm: VmDemand): number => {
  const e = s.edges!.find((x) => x.edgeId === h.edgeId);
  return e ? (vm.networks ?? []).filter((n) => n.zoneVlans[h.zone] !== undefined && e.vlans.includes(n.zoneVlans[h.zone])).length : 0;
};

/** A network model for the tests: gives network i the VLAN vlanOf(i, zone). */
function allocator(table: NetworkDemand[], log: string[]) {
  return (zone: string, ids: readonly string[]) => Object.fromEntries(ids.map((id) => {
    const i = table.findIndex((n) => n.networkId === id);
    table[i] = { ...table[i], zoneVlans: { ...table[i].zoneVlans, [zone]: vlanOf(i, zone) } };
    log.push(`${zone}/${id}`);
    return [id, vlanOf(i, zone)];
  }));
}

test('macBudget: no edge ever holds more MAC entries than its budget, and each placement adds exactly its NICs', () => {
  fc.assert(fc.property(sdnWorldArb(oc), ({ snapshot, demands }) => {
    const index = new CapacityIndex(snapshot);
    for (const d of demands) {
      const before = index.snapshot();
      const p = index.place(d);
      const after = index.snapshot();
      for (const e of after.edges!) assert.ok(e.macs <= e.macBudget, `${e.edgeId}: ${e.macs} > ${e.macBudget} after ${d.vmId}`);
      const grew = after.edges!.map((e, i) => e.macs - before.edges![i].macs);
      const on = p.ok ? edgeOfHost(after, p.hostId) : undefined;
      assert.deepEqual(grew, after.edges!.map((e) => (on && e.edgeId === on.edgeId ? nicCount(d) : 0)));
    }
  }), { numRuns: 300 });
});

test('vlanPool: a VM lands only where its networks can get VLANs, and the pools pay exactly for the VLANs given', () => {
  fc.assert(fc.property(sdnWorldArb(oc), ({ snapshot, demands, table }) => {
    const index = new CapacityIndex(snapshot);
    const t = [...table], given: string[] = [];
    const free = new Map(snapshot.vlanPools!.map((p) => [p.zone, p.free]));
    const gw = snapshot.gatewayZone ?? null;
    for (const raw of demands) {
      const d = withVlans(raw, t); // built from the network model's current VLANs, as the service would
      const pools = new Map(index.snapshot().vlanPools?.map((p) => [p.zone, p.free]));
      const p = index.place(d, allocator(t, given));
      if (!p.ok) continue;
      const h = index.get(p.hostId)!;
      const need = missingVlans(d.networks!, h.zone);
      assert.ok(need === 0 || need <= (pools.get(h.zone) ?? Infinity), `${d.vmId} took ${need} VLANs in ${h.zone}, which had ${pools.get(h.zone)}`);
      if (gw !== null && gw !== h.zone) {
        const g = missingVlans(d.networks!, gw);
        assert.ok(g === 0 || g <= (pools.get(gw) ?? Infinity), `${d.vmId} needs ${g} VLANs in the gateway zone ${gw}`);
        // The test's network model gives the gateway zone its VLANs as well.
        const missing = d.networks!.filter((n) => n.zoneVlans[gw] === undefined).map((n) => n.networkId);
        if (missing.length) allocator(t, given)(gw, missing);
      }
    }
    for (const { zone, free: f } of index.snapshot().vlanPools ?? []) {
      assert.equal(f, free.get(zone)! - given.filter((g) => g.startsWith(`${zone}/`)).length, `pool of ${zone}`);
    }
  }), { numRuns: 300 });
});

test('place() with edges and pools: only hosts passing every filter, fails only when none does, best score wins', () => {
  fc.assert(fc.property(sdnWorldArb(oc, 10), ({ snapshot, demands }) => {
    const sdn = snapshotView(snapshot);
    for (const d of demands) {
      const p = place(snapshot, d);
      const fitting = snapshot.hosts.filter((h) => fits(h, d, DEFAULT_POLICY, sdn));
      if (!p.ok) { assert.equal(fitting.length, 0, p.reason); continue; }
      const best = fitting.map((h) => ({ id: h.hostId, s: score(h, d, DEFAULT_POLICY, sdn) }))
        .sort((a, b) => b.s - a.s || (a.id < b.id ? -1 : 1))[0];
      assert.equal(p.hostId, best.id);
    }
  }), { numRuns: 300 });
});

test('vlanAffinity: when it outweighs the rest, the chosen edge carries as many of the VM\'s VLANs as any that qualifies', () => {
  // Scores differ by at least 1/3 × 3 = 1 per VLAN carried (VMs have up to 3 networks), memory by less than 1.
  const policy = makePolicy({ weighers: [{ name: 'freeMemory', weight: 1 }, { name: 'vlanAffinity', weight: 3 }] });
  fc.assert(fc.property(sdnWorldArb(policy.overcommit, 10), ({ snapshot, demands }) => {
    const sdn = snapshotView(snapshot);
    for (const d of demands) {
      const p = place(snapshot, d, policy);
      if (!p.ok) continue;
      const chosen = snapshot.hosts.find((h) => h.hostId === p.hostId)!;
      const most = Math.max(...snapshot.hosts.filter((h) => fits(h, d, policy, sdn)).map((h) => carried(snapshot, h, d)));
      assert.equal(carried(snapshot, chosen, d), most, `${d.vmId} went to ${p.hostId}`);
    }
  }), { numRuns: 300 });
});

test('CapacityIndex with edges and pools chooses exactly what place() would over its current state, reason included', () => {
  fc.assert(fc.property(sdnWorldArb(oc), ({ snapshot, demands, table }) => {
    const index = new CapacityIndex(snapshot);
    const t = [...table];
    for (const raw of demands) {
      const d = withVlans(raw, t);
      assert.deepEqual(index.choose(d), place(index.snapshot(), d));
      index.place(d, allocator(t, []));
    }
  }), { numRuns: 300 });
});

test('release undoes place: edges and hosts come back to where they started', () => {
  fc.assert(fc.property(sdnWorldArb(oc), ({ snapshot, demands, table }) => {
    const index = new CapacityIndex(snapshot);
    const start = index.snapshot();
    const t = [...table];
    const placed: [string, VmDemand][] = [];
    for (const raw of demands) {
      const d = withVlans(raw, t);
      const p = index.place(d, allocator(t, []));
      if (p.ok) placed.push([p.hostId, d]);
    }
    for (const [hostId, d] of placed.reverse()) index.release(hostId, withVlans(d, t));
    const end = index.snapshot();
    assert.deepEqual(end.hosts, start.hosts);
    assert.deepEqual(end.edges, start.edges);
  }), { numRuns: 300 });
});
