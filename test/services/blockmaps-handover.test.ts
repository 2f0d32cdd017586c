import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import { BlockMaps, LEASE_MS } from '../../src/services/blockmaps.js';
import { LocalMapSource } from '../../src/services/local-map.js';
import type { Principal } from '../../src/services/principal.js';
import { LeaseHeld, LeaseLost } from '../../src/storage/frontend/map.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault } from './fixtures.js';
import { Clock, registerNode } from './storage-fixtures.js';

const SRC = 'host-aaaaaaaaaaaa';
const DST = 'host-bbbbbbbbbbbb';
const THIRD = 'host-cccccccccccc';

forEachDb('block map: live migration hands the lease over', (env) => {
  let t: Principal;
  let maps: BlockMaps;
  const clock = new Clock();
  before(async () => {
    t = await newTenant(env.services, 'handover');
    await registerNode(env.services, 'sn-handover');
    maps = new BlockMaps(env.db, { now: clock.now });
  });
  const volume = () => env.services.volumes.allocate(t, { sizeGiB: 1 });

  it('moves the live lease to the new holder with the next epoch; the old holder is fenced, no third holder gets in', async () => {
    const vol = await volume();
    const a = await maps.open(vol, SRC);
    await maps.allocate(vol, SRC, a.epoch, [4]);
    clock.advance(LEASE_MS - 1);
    await maps.handover(vol, SRC, a.epoch, DST);
    // A fresh lease for the new holder: it does not lapse with the old holder's last renew.
    assert.deepEqual(await maps.leaseOf(vol), { holder: DST, epoch: a.epoch + 1, expiresAt: new Date(clock.t + LEASE_MS).toISOString() });
    // What the destination asks to give back a lease handed to it that it never opened.
    assert.equal(await maps.heldEpoch(vol, DST), a.epoch + 1);
    assert.equal(await maps.heldEpoch(vol, SRC), null);
    for (const call of [
      () => maps.renew(vol, SRC, a.epoch), () => maps.allocate(vol, SRC, a.epoch, [5]), () => maps.update(vol, SRC, a.epoch, []),
      () => maps.discard(vol, SRC, a.epoch, [4]), () => maps.release(vol, SRC, a.epoch), () => maps.handover(vol, SRC, a.epoch, THIRD),
    ]) await assert.rejects(call(), LeaseLost);
    clock.advance(LEASE_MS - 1);
    await assert.rejects(maps.open(vol, THIRD), (e) => e instanceof LeaseHeld && e.holder === DST);
    await assert.rejects(maps.open(vol, SRC), LeaseHeld);

    const b = await maps.open(vol, DST);
    assert.equal(b.epoch, a.epoch + 2);
    assert.deepEqual(b.blocks.map((x) => x.block), [4]);
    await maps.allocate(vol, DST, b.epoch, [5]);
    await maps.release(vol, DST, b.epoch);
    // Handed back (a rollback after the destination stopped): the source opens again.
    assert.equal((await maps.open(vol, SRC)).epoch, b.epoch + 1);
  });

  it('only the holder hands over: another holder or an older epoch gets LeaseLost', async () => {
    const vol = await volume();
    const a = await maps.open(vol, SRC);
    await assert.rejects(maps.handover(vol, THIRD, a.epoch, DST), LeaseLost);
    await assert.rejects(maps.handover(vol, SRC, a.epoch - 1, DST), LeaseLost);
    const again = await maps.open(vol, SRC);
    await assert.rejects(maps.handover(vol, SRC, a.epoch, DST), LeaseLost);
    assert.deepEqual((await maps.leaseOf(vol))?.holder, SRC);
    await maps.handover(vol, SRC, again.epoch, DST);
    assert.equal((await maps.leaseOf(vol))?.holder, DST);
  });

  it('sent again after it committed (its answer lost) it succeeds without a change', async () => {
    const vol = await volume();
    const a = await maps.open(vol, SRC);
    await maps.handover(vol, SRC, a.epoch, DST);
    await maps.handover(vol, SRC, a.epoch, DST);
    assert.equal((await maps.leaseOf(vol))?.epoch, a.epoch + 1);
    // Not once the new holder has opened: then the old epoch is simply stale.
    await maps.open(vol, DST);
    await assert.rejects(maps.handover(vol, SRC, a.epoch, DST), LeaseLost);
  });

  it('a lapsed lease nobody took over can still be handed over; a released one cannot', async () => {
    const vol = await volume();
    const a = await maps.open(vol, SRC);
    clock.advance(LEASE_MS + 1);
    await maps.handover(vol, SRC, a.epoch, DST);
    await assert.rejects(maps.open(vol, THIRD), LeaseHeld);
    const b = await maps.open(vol, DST);
    await maps.release(vol, DST, b.epoch);
    await assert.rejects(maps.handover(vol, DST, b.epoch, SRC), LeaseLost);
  });

  it('refuses a hand-over to itself or to a bad holder', async () => {
    const vol = await volume();
    const a = await maps.open(vol, SRC);
    await fault(maps.handover(vol, SRC, a.epoch, SRC), Fault.INVALID_PARAMS);
    await fault(maps.handover(vol, SRC, a.epoch, ''), Fault.INVALID_PARAMS);
    await maps.renew(vol, SRC, a.epoch);
  });

  it('LocalMapSource hands over under its holder', async () => {
    const vol = await volume();
    const local = LocalMapSource.forController(maps, 'c1');
    const m = await local.open(vol);
    await local.handover(vol, m.epoch, DST);
    await assert.rejects(local.renew(vol, m.epoch), LeaseLost);
    assert.equal((await maps.open(vol, DST)).epoch, m.epoch + 2);
  });
});
