/**
 * Images end to end with the sim compute driver and real storage: the controller's image store,
 * restoreImage through the request engine onto a volume on a storage node, power-on with the
 * volume exported by the agent's frontend over NBD and the image's boot information resolved to
 * files in the agent's image cache, createImageFromVolume (cloning by copy), and the deletion of a
 * deallocated volume's objects.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import { sha256File } from '../../src/guest/hash.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant, silent } from '../helpers/db.js';
import { fault } from '../services/fixtures.js';
import { StorageReconciler } from '../../src/storage/controller/reconcile.js';
import { ImageCloud, rawImage, run } from './fixtures.js';

const GiB = 1024 ** 3;
/** A VM type with a 1 GiB system disk: captures read (and hash) the whole volume. */
const SMALL_DISK = 'be.1g';

forEachDb('images and restoreImage', (env) => {
  let cloud: ImageCloud;
  let t: Principal, other: Principal, admin: Principal;
  let work: string;
  let disk: string, kernel: string, initrd: string;
  let plain = '', booting = '', theirs = '';

  before(async () => {
    const s = env.services;
    t = await newTenant(s, 'acme');
    other = await newTenant(s, 'globex');
    admin = await newTenant(s, 'ops', {}, true);
    await s.vmTypes.put(admin, [{ type: SMALL_DISK, vcpus: 1, memoryMiB: 256, systemDiskGiB: 1, resourceType: 'best-effort' }]);
    cloud = new ImageCloud(s);
    await cloud.start();
    work = mkdtempSync(join(tmpdir(), 'kumo-images-work-'));
    disk = rawImage(join(work, 'four.raw'), 4, 0x41);
    kernel = join(work, 'vmlinux');
    writeFileSync(kernel, Buffer.from('not really a kernel, but bytes to fetch and check\n'.repeat(1000)));
    initrd = join(work, 'initrd.img');
    writeFileSync(initrd, Buffer.from('initramfs stand-in\n'.repeat(500)));
    plain = (await s.images.register(admin, { name: 'four', os: 'linux', disk })).imageId;
    booting = (await s.images.register(admin, {
      name: 'kernel-boot', os: 'linux', kind: 'tiny', disk, files: [{ name: 'vmlinux', path: kernel }, { name: 'initrd.img', path: initrd }],
      boot: { kernel: 'vmlinux', initrd: 'initrd.img', append: 'console=ttyS0 quiet' },
    })).imageId;
    theirs = (await s.images.register(admin, { name: 'private', os: 'linux', disk, tenantId: other.tenantId })).imageId;
  });
  after(async () => {
    await cloud.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('registers images admin-only and idempotently by name; tenants see public and their own', async () => {
    const s = env.services;
    await fault(s.images.register(t, { name: 'mine', os: 'linux', disk }), Fault.AUTHORIZATION);
    await fault(s.images.register(admin, { name: 'bad name!', os: 'linux', disk }), Fault.INVALID_PARAMS);
    await fault(s.images.register(admin, { name: 'x', os: 'linux', disk, boot: { kernel: 'vmlinux' } }), Fault.INVALID_PARAMS);
    const again = await s.images.register(admin, { name: 'four', os: 'linux', disk });
    assert.deepEqual([again.imageId, again.changed, again.created], [plain, false, false]);
    assert.equal(again.sha256, await sha256File(disk));
    // New bytes under the same name replace the files and keep the id.
    const other4 = rawImage(join(work, 'four-b.raw'), 4, 0x61);
    const replaced = await s.images.register(admin, { name: 'four', os: 'linux', disk: other4 });
    assert.deepEqual([replaced.imageId, replaced.changed, replaced.created], [plain, true, false]);
    assert.equal(replaced.sha256, await sha256File(other4));
    const back = await s.images.register(admin, { name: 'four', os: 'linux', disk });
    assert.deepEqual([back.imageId, back.changed], [plain, true]);
    const stored = join(cloud.controllerData, 'images', plain, 'disk.raw');
    assert.equal(await sha256File(stored), await sha256File(disk));
    assert.ok(statSync(stored).blocks * 512 < 4 * 1048576, 'the zero MiB is a hole in the stored disk');

    assert.deepEqual((await s.images.list(t)).map((i) => i.name), ['four', 'kernel-boot']);
    assert.deepEqual((await s.images.list(other)).map((i) => i.name), ['four', 'kernel-boot', 'private']);
    const info = await s.images.info(t, plain);
    assert.deepEqual([info.name, info.os, info.sizeGiB, info.kind], ['four', 'linux', 1, 'imported']);
    await fault(s.images.info(t, theirs), Fault.NOT_FOUND);
    const meta = await s.images.agentMeta(booting);
    assert.deepEqual(meta.files.map((f) => f.name), ['disk.raw', 'vmlinux', 'initrd.img']);
    assert.deepEqual(meta.boot, { kernel: 'vmlinux', initrd: 'initrd.img', append: 'console=ttyS0 quiet' });
    assert.equal(meta.sizeBytes, 4 * 1048576);
  });

  /** `length` bytes of the volume at `offset`, read by the controller's own frontend. */
  const readVolume = (volumeId: string, offset: number, length: number) => cloud.storage!.withSession(volumeId, (v) => v.read(offset, length));

  it('restores an image onto the system volume on the storage node: progress moves, the volume holds the image, the rest reads zeros', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: SMALL_DISK, name: 'restored' });
    const volumeId = (await s.vms.info(t, vm)).disks[0].volumeId;
    const req = await s.vms.restoreImage(t, vm, plain);
    assert.equal((await s.vms.status(t, vm)).requestId, req);
    const done = await cloud.finish(t, req);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.result, { volumeId, imageId: plain });

    const progress = (await env.db.k.selectFrom('events').select('data').where('kind', '=', 'request.progress').where('resource_id', '=', vm).execute())
      .map((e) => JSON.parse(e.data) as { requestId: string; progress: number; message: string }).filter((e) => e.requestId === req);
    assert.ok(progress.some((e) => e.progress > 0 && e.progress < 100 && /writing four onto/.test(e.message)), JSON.stringify(progress));
    assert.deepEqual(progress.map((e) => e.progress), [...progress.map((e) => e.progress)].sort((a, b) => a - b), 'progress only moves forward');

    assert.deepEqual(await readVolume(volumeId, 0, 4 * 1048576), readFileSync(disk), 'the image\'s bytes, MiB by MiB');
    assert.ok((await readVolume(volumeId, 4 * 1048576, 8 * 1048576)).every((b) => b === 0), 'past the image: zeros');
    const locs = (await s.volumes.info(t, volumeId)).locations;
    assert.deepEqual(locs.map((l) => [l.nodeId, l.outOfSync, l.syncing]), [[cloud.nodeId, 0, 0]]);
    assert.equal(locs[0].inSync, 1, 'the image\'s non-zero MiBs fill one 4 MiB block; zero blocks stay unallocated');
    const vol = await env.db.k.selectFrom('volumes').select('image_id').where('id', '=', volumeId).executeTakeFirstOrThrow();
    assert.equal(vol.image_id, plain);

    // Something written further in, then a restore again: the old content is gone, not overwritten in part.
    await cloud.storage!.withSession(volumeId, async (v) => { await v.write(300 * 1048576, Buffer.alloc(4096, 7), true); });
    const again = await cloud.finish(t, await s.vms.restoreImage(t, vm, booting));
    assert.equal(again.status, 'succeeded', JSON.stringify(again.error));
    assert.ok((await readVolume(volumeId, 300 * 1048576, 4096)).every((b) => b === 0), 'the old write is gone');
    assert.deepEqual(await readVolume(volumeId, 0, 4 * 1048576), readFileSync(disk));

    // A firmware-boot image gives no kernel; the VM starts from its disk, exported by the agent over NBD.
    await cloud.finish(t, await s.vms.restoreImage(t, vm, plain));
    const on = await cloud.finish(t, await s.vms.powerOn(t, vm));
    assert.equal(on.status, 'succeeded', JSON.stringify(on.error));
    const launched = cloud.driver.launched.get(vm)!;
    assert.equal(launched.boot, undefined);
    assert.equal(launched.kernel, undefined);
    const socket = cloud.agentStorage.frontend.socket;
    assert.deepEqual(launched.disks.map((d) => d.source), [{ kind: 'nbd', socket, export: volumeId }]);
    // What QEMU would read: the agent's export, through qemu-img (QEMU's own NBD client).
    const head = join(work, 'head.raw');
    await run('qemu-img', ['dd', '-f', 'raw', '-O', 'raw', 'bs=1M', 'count=4', `if=nbd+unix:///${volumeId}?socket=${socket}`, `of=${head}`]);
    assert.deepEqual(readFileSync(head), readFileSync(disk));
    assert.equal((await s.blockMaps.leaseOf(volumeId))?.holder, cloud.hostId, 'the running VM\'s host holds the write lease');

    // Running: restoreImage is refused at submission, and by the handler should one be queued anyway.
    await fault(s.vms.restoreImage(t, vm, plain), Fault.INVALID_STATE, /stopped/);
    const sneaked = await cloud.finish(t, await s.requests.submit(env.db.k, t.tenantId, 'restoreImage', vm, { imageId: plain }));
    assert.equal(sneaked.status, 'failed');
    assert.equal((sneaked.error as { code: number }).code, Fault.INVALID_STATE);
    assert.equal((await cloud.finish(t, await s.vms.powerOff(t, vm, true))).status, 'succeeded');
    assert.equal((await s.blockMaps.leaseOf(volumeId))?.holder ?? '', '', 'stopping the VM gave the lease back');
  });

  it('powers on with direct kernel boot from the image\'s files, fetched into the agent\'s cache; a blank data volume reads zeros', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: SMALL_DISK, name: 'kernel' });
    const vol = await s.volumes.allocate(t, { sizeGiB: 2, name: 'data' });
    await s.volumes.attach(t, vm, vol);
    assert.equal((await cloud.finish(t, await s.vms.restoreImage(t, vm, booting))).status, 'succeeded');
    const on = await cloud.finish(t, await s.vms.powerOn(t, vm));
    assert.equal(on.status, 'succeeded', JSON.stringify(on.error));
    const launched = cloud.driver.launched.get(vm)!;
    assert.deepEqual(launched.boot, { imageId: booting, kernel: 'vmlinux', initrd: 'initrd.img', append: 'console=ttyS0 quiet' });
    assert.equal(launched.kernel!.append, 'console=ttyS0 quiet');
    assert.deepEqual(readFileSync(launched.kernel!.path), readFileSync(kernel));
    assert.deepEqual(readFileSync(launched.kernel!.initrd!), readFileSync(initrd));
    const data = launched.disks.find((d) => d.volumeId === vol)!;
    assert.deepEqual(data.source, { kind: 'nbd', socket: cloud.agentStorage.frontend.socket, export: vol });
    const uri = `nbd+unix:///${vol}?socket=${cloud.agentStorage.frontend.socket}`;
    const info = await run('qemu-img', ['info', '--output=json', uri]);
    assert.equal((JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size'], 2 * GiB);
    // Through the agent's export to the storage node in its process, and back.
    const io = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0 1M 64k', '-c', 'write -P 0x5c 1M 64k', '-c', 'flush', '-c', 'read -P 0x5c 1M 64k', uri]);
    assert.doesNotMatch(io.stdout + io.stderr, /fail|error/i);
    assert.equal((await cloud.finish(t, await s.vms.powerOff(t, vm, true))).status, 'succeeded');
  });

  it('answers NOT_FOUND for another tenant\'s image, unknown ids and foreign VMs; INVALID_PARAMS when the image does not fit', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    await fault(s.vms.restoreImage(t, vm, theirs), Fault.NOT_FOUND);
    await fault(s.vms.restoreImage(admin, vm, theirs), Fault.NOT_FOUND, /image/);
    await fault(s.vms.restoreImage(t, vm, 'img-000000000000'), Fault.NOT_FOUND);
    await fault(s.vms.restoreImage(other, vm, plain), Fault.NOT_FOUND, /VM/);
    await fault(s.vms.restoreImage(t, 'vm-000000000000', plain), Fault.NOT_FOUND);
    // As if the image's disk were a little larger than the 10 GiB volume.
    const huge = (await s.images.register(admin, { name: 'huge', os: 'linux', disk: rawImage(join(work, 'huge.raw'), 1, 3) })).imageId;
    await env.db.k.updateTable('images').set({ size_bytes: 10 * GiB + 512, size_gib: 11 }).where('id', '=', huge).execute();
    await fault(s.vms.restoreImage(t, vm, huge), Fault.INVALID_PARAMS, /does not fit/);
    assert.deepEqual(await s.requests.list(t, { resourceId: vm }), []);
  });

  it('createImageFromVolume copies a stopped VM\'s disk into a private image that boots like its source; a VM restored from it reads the same bytes', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: SMALL_DISK, name: 'source' });
    const volumeId = (await s.vms.info(t, vm)).disks[0].volumeId;
    assert.equal((await cloud.finish(t, await s.vms.restoreImage(t, vm, booting))).status, 'succeeded');
    await cloud.storage!.withSession(volumeId, async (v) => { await v.write(700 * 1048576 + 5, Buffer.from('written by the first VM'), true); });
    await fault(s.volumes.submitCapture(other, volumeId, { name: 'stolen' }), Fault.NOT_FOUND);
    await fault(s.volumes.submitCapture(t, volumeId, { name: 'bad name!' }), Fault.INVALID_PARAMS);
    const cap = await cloud.finish(t, await s.volumes.submitCapture(t, volumeId, { name: 'source-copy' }));
    assert.equal(cap.status, 'succeeded', JSON.stringify(cap.error));
    const imageId = (cap.result as { imageId: string }).imageId;
    assert.deepEqual((await s.images.list(t)).find((i) => i.imageId === imageId)?.name, 'source-copy');
    assert.equal((await s.images.list(other)).some((i) => i.imageId === imageId), false, 'private to the tenant');
    const meta = await s.images.agentMeta(imageId);
    assert.deepEqual(meta.boot, { kernel: 'vmlinux', initrd: 'initrd.img', append: 'console=ttyS0 quiet' });
    assert.equal(meta.sizeBytes, GiB);

    const clone = await s.vms.allocate(t, { type: SMALL_DISK, name: 'clone' });
    assert.equal((await cloud.finish(t, await s.vms.restoreImage(t, clone, imageId))).status, 'succeeded');
    const cloneVol = (await s.vms.info(t, clone)).disks[0].volumeId;
    assert.equal((await readVolume(cloneVol, 700 * 1048576 + 5, 23)).toString(), 'written by the first VM');
    assert.deepEqual(await readVolume(cloneVol, 0, 4 * 1048576), readFileSync(disk));

    // In use: refused.
    assert.equal((await cloud.finish(t, await s.vms.powerOn(t, vm))).status, 'succeeded');
    await fault(s.volumes.submitCapture(t, volumeId, { name: 'live' }), Fault.INVALID_STATE, /stop it first/);
    assert.equal((await cloud.finish(t, await s.vms.powerOff(t, vm, true))).status, 'succeeded');
  });

  it('deallocateVm: the volume\'s objects are deleted on the storage node by the storage housekeeping', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: SMALL_DISK });
    const volumeId = (await s.vms.info(t, vm)).disks[0].volumeId;
    assert.equal((await cloud.finish(t, await s.vms.restoreImage(t, vm, plain))).status, 'succeeded');
    const files = () => cloud.node!.store.list();
    const withIt = (await files()).length;
    assert.ok(withIt > 0);
    await s.vms.deallocate(t, vm);
    assert.ok((await s.blockMaps.garbage(cloud.nodeId)).length > 0, 'its objects are garbage now');
    await new StorageReconciler(s, cloud.storage!.pool, silent).round();
    assert.deepEqual(await s.blockMaps.garbage(cloud.nodeId), []);
    assert.ok((await files()).length < withIt, 'objects deleted on the node');
  });
});
