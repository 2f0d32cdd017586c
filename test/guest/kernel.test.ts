import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { bzImagePayload, extractVmlinux } from '../../src/guest/kernel.js';

/** A minimal bzImage: setup sectors, the header fields we read, then the payload. */
function fakeBzImage(payload: Buffer): Buffer {
  const setupSects = 1;
  const head = Buffer.alloc((setupSects + 1) * 512);
  head[0x1f1] = setupSects;
  head.write('HdrS', 0x202, 'latin1');
  head.writeUInt16LE(0x20f, 0x206);
  head.writeUInt32LE(16, 0x248); // payload offset inside the protected-mode part
  head.writeUInt32LE(payload.length, 0x24c);
  return Buffer.concat([head, Buffer.alloc(16), payload, Buffer.from('trailing')]);
}

test('finds the payload by the boot header and decompresses it (gzip + appended size)', async () => {
  const elf = Buffer.concat([Buffer.from('\x7fELF', 'latin1'), Buffer.alloc(100, 7)]);
  const payload = Buffer.concat([gzipSync(elf), Buffer.from([elf.length, 0, 0, 0])]);
  const bz = fakeBzImage(payload);
  assert.deepEqual(bzImagePayload(bz), payload);
  assert.deepEqual(await extractVmlinux(bz), elf);
});

test('rejects what is not a bzImage', async () => {
  assert.throws(() => bzImagePayload(Buffer.alloc(4096)), /not an x86 bzImage/);
  await assert.rejects(extractVmlinux(fakeBzImage(Buffer.from('plain text, not compressed'))), /unsupported bzImage compression/);
});
