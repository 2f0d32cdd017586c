/**
 * Images end to end with the sim driver: the controller's image store, restoreImage through the
 * request engine and the agent (image cache, volume files written with qemu-img), power-on with
 * the image's boot information resolved to files on the agent, placement pinned to the host that
 * holds a volume's file, and the heartbeat deleting files of deallocated volumes.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import { sha256File } from '../../src/guest/hash.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant, until } from '../helpers/db.js';
import { fault, registerDeadHosts } from '../services/fixtures.js';
import { ImageCloud, rawImage, run } from './fixtures.js';

const GiB = 1024 ** 3;

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

  it('restores an image onto the system volume: progress moves, the volume file holds the image at the volume\'s size', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small', name: 'restored' });
    const volumeId = (await s.vms.info(t, vm)).disks[0].volumeId;
    const req = await s.vms.restoreImage(t, vm, plain);
    assert.equal((await s.vms.status(t, vm)).requestId, req);
    const done = await cloud.finish(t, req);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    assert.deepEqual(done.result, { volumeId, imageId: plain, host: cloud.hostId });

    const progress = (await env.db.k.selectFrom('events').select('data').where('kind', '=', 'request.progress').where('resource_id', '=', vm).execute())
      .map((e) => JSON.parse(e.data) as { requestId: string; progress: number; message: string }).filter((e) => e.requestId === req);
    assert.ok(progress.some((e) => e.progress > 0 && e.progress < 100), JSON.stringify(progress));
    assert.ok(progress.some((e) => /fetching the image/.test(e.message)) && progress.some((e) => /writing the disk/.test(e.message)), JSON.stringify(progress));
    assert.deepEqual(progress.map((e) => e.progress), [...progress.map((e) => e.progress)].sort((a, b) => a - b), 'progress only moves forward');

    const file = cloud.volumeFile(volumeId);
    assert.equal(statSync(file).size, 10 * GiB);
    assert.ok(statSync(file).blocks * 512 < 8 * 1048576, 'the volume file is sparse');
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', disk, file]);
    assert.match(cmp.stdout, /Images are identical/);
    const head = Buffer.alloc(4);
    const fd = openSync(file, 'r');
    readSync(fd, head, 0, 4, 2 * 1048576 - 2);
    closeSync(fd);
    assert.deepEqual(head, Buffer.from([0x42, 0x42, 0x43, 0x43]), 'the image\'s bytes, MiB by MiB');
    const vol = await env.db.k.selectFrom('volumes').select(['image_id', 'local_host']).where('id', '=', volumeId).executeTakeFirstOrThrow();
    assert.deepEqual(vol, { image_id: plain, local_host: cloud.hostId });

    // Again with another image: the old content is gone, not overwritten in part.
    const again = await cloud.finish(t, await s.vms.restoreImage(t, vm, booting));
    assert.equal(again.status, 'succeeded', JSON.stringify(again.error));
    assert.match((await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', disk, file])).stdout, /identical/);

    // A firmware-boot image gives no kernel; the VM starts from its disk file.
    await cloud.finish(t, await s.vms.restoreImage(t, vm, plain));
    const on = await cloud.finish(t, await s.vms.powerOn(t, vm));
    assert.equal(on.status, 'succeeded', JSON.stringify(on.error));
    const launched = cloud.driver.launched.get(vm)!;
    assert.equal(launched.boot, undefined);
    assert.equal(launched.kernel, undefined);
    assert.deepEqual(launched.disks.map((d) => d.source), [{ kind: 'file', path: file }]);

    // Running: restoreImage is refused at submission, and by the handler should one be queued anyway.
    await fault(s.vms.restoreImage(t, vm, plain), Fault.INVALID_STATE, /stopped/);
    const sneaked = await cloud.finish(t, await s.requests.submit(env.db.k, t.tenantId, 'restoreImage', vm, { imageId: plain }));
    assert.equal(sneaked.status, 'failed');
    assert.equal((sneaked.error as { code: number }).code, Fault.INVALID_STATE);
    assert.equal((await cloud.finish(t, await s.vms.powerOff(t, vm, true))).status, 'succeeded');
  });

  it('powers on with direct kernel boot from the image\'s files, fetched into the agent\'s cache', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small', name: 'kernel' });
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
    // The blank data volume got a file of its size on first use, on the same host.
    const data = launched.disks.find((d) => d.volumeId === vol)!;
    assert.deepEqual(data.source, { kind: 'file', path: cloud.volumeFile(vol) });
    assert.equal(statSync(cloud.volumeFile(vol)).size, 2 * GiB);
    const row = await env.db.k.selectFrom('volumes').select('local_host').where('id', '=', vol).executeTakeFirstOrThrow();
    assert.equal(row.local_host, cloud.hostId);
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

  it('starts a VM only on the host holding its volume: NO_CAPACITY naming that host when it is down', async () => {
    const s = env.services;
    const [dead] = await registerDeadHosts(s, 'zone-i', [{ name: 'far-away' }]);
    await env.db.k.updateTable('hosts').set({ status: 'down' }).where('id', '=', dead).execute();
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const volumeId = (await s.vms.info(t, vm)).disks[0].volumeId;
    await env.db.k.updateTable('volumes').set({ local_host: dead }).where('id', '=', volumeId).execute();
    const on = await cloud.finish(t, await s.vms.powerOn(t, vm));
    assert.equal(on.status, 'failed');
    assert.equal((on.error as { code: number }).code, Fault.NO_CAPACITY);
    assert.match(on.message, new RegExp(`far-away \\(${dead}\\), which is down`));
    const restore = await cloud.finish(t, await s.vms.restoreImage(t, vm, plain));
    assert.equal((restore.error as { code: number }).code, Fault.NO_CAPACITY);
    assert.equal((await s.vms.info(t, vm)).status, 'stopped');
    await s.hosts.setMaintenance(admin, dead, true);
  });

  it('deletes the agent\'s volume file within a few heartbeats of deallocateVm', async () => {
    const s = env.services;
    const vm = await s.vms.allocate(t, { type: 'be.small' });
    const volumeId = (await s.vms.info(t, vm)).disks[0].volumeId;
    assert.equal((await cloud.finish(t, await s.vms.restoreImage(t, vm, plain))).status, 'succeeded');
    const file = cloud.volumeFile(volumeId);
    assert.ok(existsSync(file));
    const keep = await s.vms.allocate(t, { type: 'be.small' });
    assert.equal((await cloud.finish(t, await s.vms.restoreImage(t, keep, plain))).status, 'succeeded');
    await s.vms.deallocate(t, vm);
    await until('the agent to delete the volume file', async () => !existsSync(file), 5000);
    // Only that one: the other VM's volume stays.
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(existsSync(cloud.volumeFile((await s.vms.info(t, keep)).disks[0].volumeId)));
    // A store-identity file guards against deletions on a foreign store's word.
    assert.equal(readFileSync(join(cloud.agentData, 'volumes', '.store-id'), 'utf8').trim(), await s.images.storeId());
    await assert.rejects(cloud.resolver.storage.dropVolumes('another-store', [volumeId]), /belong to store/);
  });
});
