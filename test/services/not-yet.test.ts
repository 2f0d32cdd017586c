import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import { now } from '../../src/state/db.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault, registerDeadHosts } from './fixtures.js';

const NOT_YET = /^not available yet: /;

// Methods whose machinery arrives with later issues must say so plainly — but only after the input
// has been checked, so a client's own mistakes are reported as such today.
forEachDb('methods not available yet', (env) => {
  let t: Principal, other: Principal;
  let vm = '', vol = '', img = '', node = '';

  before(async () => {
    const s = env.services;
    t = await newTenant(s, 'early');
    other = await newTenant(s, 'nosy');
    await registerDeadHosts(s, 'zone-a', [{ name: 'h1' }]);
    vm = await s.vms.allocate(t, { type: 'be.small' });
    vol = await s.volumes.allocate(t, { sizeGiB: 1 });
    // Rows stand in for an image and a storage node (their own suites register real ones).
    const zone = (await env.db.k.selectFrom('zones').select('id').executeTakeFirstOrThrow()).id;
    img = 'img-0123456789ab';
    node = 'node-0123456789ab';
    await env.db.k.insertInto('images').values({ id: img, tenant_id: null, name: 'tiny', os: 'linux', size_gib: 1, kind: 'public', source: 'test', created_at: now() }).execute();
    await env.db.k.insertInto('storage_nodes').values({ id: node, zone_id: zone, name: 'sn1', status: 'up', created_at: now() }).execute();
  });

  it('restoreImage: NOT_FOUND for unknown or foreign VM and image, INVALID_STATE for an image with no disk', async () => {
    const s = env.services;
    await fault(s.vms.restoreImage(t, 'vm-000000000000', img), Fault.NOT_FOUND);
    await fault(s.vms.restoreImage(other, vm, img), Fault.NOT_FOUND);
    await fault(s.vms.restoreImage(t, vm, 'img-000000000000'), Fault.NOT_FOUND);
    await fault(s.vms.restoreImage(t, vm, img), Fault.INVALID_STATE, /no disk in the image store/);
  });

  it('addVolumeLocation and removeVolumeLocation: NOT_FOUND for unknown volume or node; encrypted volumes: not available yet', async () => {
    const s = env.services;
    for (const m of [s.volumes.addLocation.bind(s.volumes), s.volumes.removeLocation.bind(s.volumes)]) {
      await fault(m(t, 'vol-000000000000', node), Fault.NOT_FOUND);
      await fault(m(other, vol, node), Fault.NOT_FOUND);
      await fault(m(t, vol, 'node-000000000000'), Fault.NOT_FOUND);
    }
    await fault(s.volumes.allocate(t, { sizeGiB: 1, encrypted: true }), Fault.INVALID_STATE, NOT_YET);
  });
});
