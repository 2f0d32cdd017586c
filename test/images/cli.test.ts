/**
 * Images from the outside: `kumo up` registers tiny-linux (built from Debian packages, cached under
 * KUMO_CACHE or the OS temp dir), `kumo image import` converts a qcow2 with qemu-img and uploads it
 * over REST, `kumo image build-tiny` builds locally and prints the files.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kumo } from '../cli/run.js';
import { Cloud, rest } from '../helpers/cloud.js';
import { run } from './fixtures.js';

describe('images through kumo up and the CLI', () => {
  let cloud: Cloud;
  let work: string;
  const as = (who: 'admin' | 'tenant') => ['--data', cloud.data, '--as', who];

  before(async () => {
    cloud = await Cloud.up();
    work = mkdtempSync(join(tmpdir(), 'kumo-images-cli-'));
  });
  after(async () => {
    await cloud?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  it('kumo up registers tiny-linux, booting its kernel directly', async () => {
    assert.match(cloud.out, /image: +tiny-linux \(img-[0-9a-f]{12}\)/);
    const list = await rest(cloud, 'tenant', 'GET', '/images');
    const tiny = (list.body as { imageId: string; name: string; os: string; kind: string; sizeGiB: number }[]).find((i) => i.name === 'tiny-linux');
    assert.ok(tiny, JSON.stringify(list.body));
    assert.deepEqual([tiny.os, tiny.kind, tiny.sizeGiB], ['linux', 'tiny', 1]);
    const info = await rest(cloud, 'tenant', 'GET', `/images/${tiny.imageId}`);
    assert.match(info.body.source, /^kumo image build-tiny: kernel \d+\.\d+/);
    for (const f of ['disk.raw', 'vmlinux', 'initrd.img']) assert.ok(existsSync(join(cloud.data, 'images', tiny.imageId, f)), f);
    assert.equal(statSync(join(cloud.data, 'images', tiny.imageId, 'disk.raw')).size, 64 * 1048576);
  });

  it('kumo image import uploads a qcow2 as raw: the stored disk compares equal', async () => {
    const q = join(work, 'data.qcow2');
    await run('qemu-img', ['create', '-f', 'qcow2', q, '32M']);
    await run('qemu-io', ['-c', 'write -P 0xab 0 1M', '-c', 'write -P 0xcd 20M 64k', q]);
    const r = await kumo(['image', 'import', q, '--name', 'data-disk', '--os', 'linux', ...as('admin')]);
    assert.equal(r.code, 0, r.stderr);
    const imageId = r.stdout.trim();
    assert.match(imageId, /^img-[0-9a-f]{12}$/);
    const stored = join(cloud.data, 'images', imageId, 'disk.raw');
    assert.match((await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', q, stored])).stdout, /Images are identical/);
    assert.equal(statSync(stored).size, 32 * 1048576);
    assert.ok(statSync(stored).blocks * 512 < 4 * 1048576, 'stored sparse');

    const info = await kumo(['image', 'show', imageId, '--output', 'json', ...as('tenant')]);
    assert.equal(info.code, 0, info.stderr);
    const i = JSON.parse(info.stdout);
    assert.deepEqual([i.name, i.os, i.kind, i.sizeGiB], ['data-disk', 'linux', 'imported', 1]);
    assert.match(i.source, /data\.qcow2 \(qcow2, 33554432 bytes\)/);

    // The same name again: same image, nothing changed.
    const again = await kumo(['image', 'import', q, '--name', 'data-disk', '--os', 'linux', '--output', 'json', ...as('admin')]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout), { ...JSON.parse(again.stdout), imageId, changed: false, created: false });
    // Tenants may not import; a missing file is one line.
    const tenant = await kumo(['image', 'import', q, '--name', 'mine', ...as('tenant')]);
    assert.equal(tenant.code, 1);
    assert.match(tenant.stderr, /^kumo: importing images is for administrators/);
    const missing = await kumo(['image', 'import', join(work, 'nope.qcow2'), '--name', 'x', ...as('admin')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no such file/);
  });

  it('the upload route refuses tenants and other encodings', async () => {
    const c = cloud.creds;
    const put = (who: 'admin' | 'tenant', headers: Record<string, string>) => fetch(`${c.restUrl}/images/raw-one/disk?os=linux`, {
      method: 'PUT', body: Buffer.alloc(4096, 7), headers: { authorization: `Bearer ${c[who].key}`, 'content-type': 'application/octet-stream', ...headers },
    });
    assert.equal((await put('tenant', {})).status, 403);
    assert.equal((await put('admin', { 'content-encoding': 'br' })).status, 415);
    const ok = await put('admin', {});
    assert.equal(ok.status, 201);
    const body = await ok.json() as { imageId: string; sizeGiB: number; created: boolean };
    assert.deepEqual([body.sizeGiB, body.created], [1, true]);
    assert.equal((await fetch(`${c.restUrl}/images/raw-one/disk`, { method: 'PUT', body: Buffer.alloc(10), headers: { 'content-type': 'application/octet-stream' } })).status, 401);
    // Agents' download routes want a node token, not an API key.
    assert.equal((await fetch(`${c.restUrl.replace(/\/v1$/, '')}/v1/agent/images/${body.imageId}/disk.raw`, { headers: { authorization: `Bearer ${c.admin.key}` } })).status, 401);
  });

  it('kumo image build-tiny builds locally and prints the files', { timeout: 300_000 }, async () => {
    const out = join(work, 'tiny');
    const r = await kumo(['image', 'build-tiny', '--out', out, '--output', 'json'], { env: process.env.KUMO_CACHE ? { KUMO_CACHE: process.env.KUMO_CACHE } : {} });
    assert.equal(r.code, 0, r.stderr);
    const files = JSON.parse(r.stdout) as Record<string, string>;
    for (const k of ['disk', 'kernel', 'vmlinux', 'initrd', 'manifest']) assert.ok(existsSync(files[k]) && files[k].startsWith(out), `${k}: ${files[k]}`);
  });
});
