/**
 * BlockMaps against a model (fast-check): random sequences of replica updates, location additions
 * and removals leave the store exactly as the model says, refusals included — and removing a
 * location never leaves a block that had an in-sync copy without one.
 */
import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import fc from 'fast-check';
import { KumoError, faultName } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import type { ReplicaState } from '../../src/storage/blockmap/index.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { registerNode } from './storage-fixtures.js';

const BLOCKS = 4;
const H = 'export:prop';

type Cmd =
  | { op: 'update'; block: number; node: number; state: ReplicaState | null }
  | { op: 'add'; node: number }
  | { op: 'remove'; node: number };

const cmdArb = (nodes: number): fc.Arbitrary<Cmd> => fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('update' as const), block: fc.nat(BLOCKS - 1), node: fc.nat(nodes - 1), state: fc.constantFrom<ReplicaState | null>('in-sync', 'syncing', 'out-of-sync', null) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('add' as const), node: fc.nat(nodes - 1) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), node: fc.nat(nodes - 1) }) },
);

/** The model: locations in order, and per block its replicas by node. */
interface Model { locations: string[]; replicas: Map<string, ReplicaState>[] }

const withInSync = (m: Model) => m.replicas.filter((r) => [...r.values()].includes('in-sync')).length;

async function faultOf(p: Promise<unknown>): Promise<string | null> {
  try { await p; return null; } catch (e) {
    if (e instanceof KumoError) return faultName(e.code);
    throw e;
  }
}

forEachDb('block map properties', (env) => {
  let t: Principal;
  const nodes: string[] = [];
  before(async () => {
    t = await newTenant(env.services, 'prop');
    for (const n of ['pa', 'pb', 'pc']) nodes.push((await registerNode(env.services, n)).nodeId);
  });

  async function stored(volumeId: string): Promise<Model> {
    const locs = await env.db.k.selectFrom('volume_locations').select('node_id').where('volume_id', '=', volumeId).orderBy('added_at').orderBy('node_id').execute();
    const rows = await env.db.k.selectFrom('volume_blocks as b').innerJoin('object_replicas as r', 'r.object_id', 'b.object_id')
      .select(['b.block', 'r.node_id', 'r.state']).where('b.volume_id', '=', volumeId).execute();
    const replicas = Array.from({ length: BLOCKS }, () => new Map<string, ReplicaState>());
    for (const r of rows) replicas[Number(r.block)].set(r.node_id, r.state);
    return { locations: locs.map((l) => l.node_id), replicas };
  }

  const same = (a: Model, b: Model) => {
    assert.deepEqual([...a.locations].sort(), [...b.locations].sort());
    assert.deepEqual(a.replicas.map((r) => Object.fromEntries([...r].sort())), b.replicas.map((r) => Object.fromEntries([...r].sort())));
  };

  it('stores what the model says and never removes the last in-sync copy', { timeout: 120_000 }, async () => {
    const s = env.services;
    await fc.assert(fc.asyncProperty(fc.array(cmdArb(nodes.length), { maxLength: 25 }), async (cmds) => {
      const vol = await s.volumes.allocate(t, { sizeGiB: 1, replicas: 1 });
      const { epoch } = await s.blockMaps.open(vol, H);
      await s.blockMaps.allocate(vol, H, epoch, [...Array(BLOCKS).keys()]);
      const model = await stored(vol);
      for (const c of cmds) {
        const node = nodes[c.node];
        const isLocation = model.locations.includes(node);
        if (c.op === 'update') {
          const got = await faultOf(s.blockMaps.update(vol, H, epoch, [{ block: c.block, nodeId: node, state: c.state }]));
          if (!isLocation) assert.equal(got, 'INVALID_PARAMS');
          else {
            assert.equal(got, null);
            if (c.state === null) model.replicas[c.block].delete(node);
            else model.replicas[c.block].set(node, c.state);
          }
        } else if (c.op === 'add') {
          // As the garbage collector would have by then: the node deleted what it held of the volume.
          await s.blockMaps.garbageDone(node, await s.blockMaps.garbage(node, 10000));
          const got = await faultOf(s.blockMaps.addLocation(vol, H, epoch, node));
          if (isLocation) assert.equal(got, 'INVALID_STATE');
          else {
            assert.equal(got, null);
            model.locations.push(node);
            for (const r of model.replicas) r.set(node, 'out-of-sync');
          }
        } else {
          const before = withInSync(model);
          const lastCopy = model.replicas.some((r) => {
            const inSync = [...r].filter(([, st]) => st === 'in-sync').map(([n]) => n);
            return inSync.length > 0 && inSync.every((n) => n === node);
          });
          const got = await faultOf(s.blockMaps.removeLocation(vol, H, epoch, node));
          if (!isLocation || model.locations.length === 1 || lastCopy) assert.equal(got, 'INVALID_STATE');
          else {
            assert.equal(got, null);
            model.locations = model.locations.filter((n) => n !== node);
            for (const r of model.replicas) r.delete(node);
            assert.equal(withInSync(model), before);
          }
        }
        same(await stored(vol), model);
      }
      await s.blockMaps.release(vol, H, epoch);
    }), { numRuns: env.dialect === 'sqlite' ? 40 : 15 });
  });
});
