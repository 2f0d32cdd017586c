/**
 * The per-zone VLAN pools and the "VLANs follow members" rule, as pure functions (src/sdn/model):
 * no two networks share a VLAN in a zone, pools never leak, the gateway zone carries every network
 * with a member anywhere.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VLAN_MAX, VLAN_MIN } from '../../src/sdn/types.js';
import { allocateVlan, isVlan, lowestFreeVlan, releaseVlan, VLAN_COUNT, type ZonePool } from '../../src/sdn/model/vlans.js';
import { missingRows, neededVlans, unneededRows, type ZoneMember } from '../../src/sdn/model/vlan-needs.js';

const ZONES = ['zone-a', 'zone-b', 'zone-c'];
const NETS = Array.from({ length: 8 }, (_, i) => `net-${i}`);

/** Distinct VLANs, all in range, in every zone. */
function assertPoolsSound(pools: Map<string, ZonePool>): void {
  for (const [zone, pool] of pools) {
    const vlans = Object.values(pool);
    assert.equal(new Set(vlans).size, vlans.length, `two networks share a VLAN in ${zone}: ${JSON.stringify(pool)}`);
    for (const v of vlans) assert.ok(isVlan(v), `VLAN ${v} out of range in ${zone}`);
  }
}

test('lowestFreeVlan: VLAN_MIN first, the lowest gap next, null when all are taken', () => {
  assert.equal(VLAN_COUNT, 4093);
  assert.equal(lowestFreeVlan([]), VLAN_MIN);
  assert.equal(lowestFreeVlan([2, 3, 5]), 4);
  assert.equal(lowestFreeVlan([1, 4095, 0, 9999]), VLAN_MIN, 'IDs outside the range are no use to anyone');
  const all = Array.from({ length: VLAN_COUNT }, (_, i) => VLAN_MIN + i);
  assert.equal(lowestFreeVlan(all), null);
  assert.equal(lowestFreeVlan(all.filter((v) => v !== VLAN_MAX)), VLAN_MAX);
});

test('a full zone refuses the next network and reuses the first VLAN given back', () => {
  let pool: ZonePool = {};
  for (let i = 0; i < VLAN_COUNT; i++) pool = allocateVlan(pool, `n${i}`)!.pool;
  assert.equal(allocateVlan(pool, 'one-too-many'), null);
  assert.equal(allocateVlan(pool, 'n7')!.vlan, VLAN_MIN + 7, 'a network that holds a VLAN keeps it even in a full zone');
  pool = releaseVlan(pool, 'n100');
  assert.deepEqual(allocateVlan(pool, 'late')!.vlan, VLAN_MIN + 100);
});

const opArb = fc.record({ acquire: fc.boolean(), zone: fc.constantFrom(...ZONES), net: fc.constantFrom(...NETS) });

test('random allocate/release: no shared VLAN in a zone, stable while held, lowest free, and no leak', () => {
  fc.assert(fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
    const pools = new Map<string, ZonePool>(ZONES.map((z) => [z, {}]));
    for (const op of ops) {
      const pool = pools.get(op.zone)!;
      if (op.acquire) {
        const before = pool[op.net];
        const got = allocateVlan(pool, op.net)!;
        if (before !== undefined) assert.equal(got.vlan, before, 'a held VLAN never changes');
        else assert.equal(got.vlan, lowestFreeVlan(Object.values(pool)));
        pools.set(op.zone, got.pool);
      } else {
        const next = releaseVlan(pool, op.net);
        assert.ok(!(op.net in next));
        pools.set(op.zone, next);
      }
      assertPoolsSound(pools);
    }
    // Give everything back: every pool is whole again.
    for (const z of ZONES) for (const n of NETS) pools.set(z, releaseVlan(pools.get(z)!, n));
    for (const pool of pools.values()) {
      assert.deepEqual(pool, {});
      assert.equal(lowestFreeVlan(Object.values(pool)), VLAN_MIN);
    }
  }), { numRuns: 300 });
});

/** VMs, each with a network, placed in a zone or not; one zone may be the gateway zone. */
const worldArb = fc.record({
  gateway: fc.option(fc.constantFrom(...ZONES), { nil: null }),
  steps: fc.array(fc.record({ vm: fc.nat({ max: 11 }), net: fc.constantFrom(...NETS), zone: fc.option(fc.constantFrom(...ZONES), { nil: null }) }), { maxLength: 120 }),
});

test('VLANs follow members: after each step the rows are exactly what members need, and none stay once all leave', () => {
  fc.assert(fc.property(worldArb, ({ gateway, steps }) => {
    const vms = new Map<number, ZoneMember>();
    const pools = new Map<string, ZonePool>(ZONES.map((z) => [z, {}]));
    const rows = () => [...pools].flatMap(([zoneId, pool]) => Object.entries(pool).map(([networkId, vlan]) => ({ zoneId, networkId, vlan })));
    // What the service does: acquire what is missing, give back what is not needed.
    const sync = () => {
      const need = neededVlans(vms.values(), gateway);
      for (const m of missingRows(rows(), need)) pools.set(m.zoneId, allocateVlan(pools.get(m.zoneId)!, m.networkId)!.pool);
      for (const r of unneededRows(rows(), need)) pools.set(r.zoneId, releaseVlan(pools.get(r.zoneId)!, r.networkId));
    };
    for (const s of steps) {
      if (s.zone === null) vms.delete(s.vm);
      else vms.set(s.vm, { networkId: s.net, zoneId: s.zone });
      sync();
      assertPoolsSound(pools);
      const placed = [...vms.values()];
      for (const r of rows()) {
        const here = placed.some((m) => m.networkId === r.networkId && m.zoneId === r.zoneId);
        const gwKeeps = r.zoneId === gateway && placed.some((m) => m.networkId === r.networkId);
        assert.ok(here || gwKeeps, `${r.networkId} holds VLAN ${r.vlan} in ${r.zoneId} with no member needing it`);
      }
      for (const m of placed) {
        assert.ok(pools.get(m.zoneId)![m.networkId] !== undefined, `${m.networkId} has a member in ${m.zoneId} but no VLAN there`);
        if (gateway) assert.ok(pools.get(gateway)![m.networkId] !== undefined, `${m.networkId} has no VLAN in the gateway zone`);
      }
    }
    vms.clear();
    sync();
    assert.deepEqual(rows(), []);
  }), { numRuns: 300 });
});

test('missingRows lists zones and networks in sorted order; unneededRows keeps what is needed', () => {
  const need = neededVlans([{ networkId: 'net-b', zoneId: 'zone-b' }, { networkId: 'net-a', zoneId: 'zone-b' }], 'zone-a');
  assert.deepEqual(missingRows([], need), [
    { zoneId: 'zone-a', networkId: 'net-a' }, { zoneId: 'zone-a', networkId: 'net-b' },
    { zoneId: 'zone-b', networkId: 'net-a' }, { zoneId: 'zone-b', networkId: 'net-b' },
  ]);
  const rows = [{ zoneId: 'zone-a', networkId: 'net-a', vlan: 2 }, { zoneId: 'zone-c', networkId: 'net-a', vlan: 2 }];
  assert.deepEqual(unneededRows(rows, need), [rows[1]]);
});
