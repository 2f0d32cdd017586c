import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moduleName, parseModuleIndex, resolveLoadOrder } from '../../src/guest/modules.js';

const index = parseModuleIndex({
  dep: [
    'kernel/drivers/virtio/virtio_ring.ko:',
    'kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/virtio/virtio_pci_modern_dev.ko:',
    'kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko',
    'kernel/fs/jbd2/jbd2.ko:',
    'kernel/fs/ext4/ext4.ko: kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko',
    'kernel/fs/mbcache.ko:',
    'kernel/crypto/crc32c_generic.ko:',
    'kernel/arch/x86/crypto/crc32c-intel.ko:',
  ].join('\n'),
  softdep: 'softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\nsoftdep missing pre: nothing-here\n',
  alias: 'alias crypto-crc32c crc32c_intel\nalias crypto-crc32c crc32c_generic\n',
  builtin: 'kernel/net/packet/af_packet.ko\n',
});

test('module names are normalised like the kernel does', () => {
  assert.equal(moduleName('kernel/arch/x86/crypto/crc32c-intel.ko'), 'crc32c_intel');
  assert.equal(moduleName('kernel/drivers/block/virtio_blk.ko.zst'), 'virtio_blk');
});

test('dependencies load first, each once; softdeps prefer the generic implementation', () => {
  const plan = resolveLoadOrder(index, ['virtio_pci', 'virtio-blk', 'ext4', 'af_packet']);
  assert.deepEqual(plan.order, ['virtio_pci_modern_dev', 'virtio_ring', 'virtio', 'virtio_pci', 'virtio_blk', 'crc32c_generic', 'mbcache', 'jbd2', 'ext4']);
  assert.deepEqual(plan.builtin, ['af_packet']);
  assert.equal(index.path.get('virtio_blk'), 'kernel/drivers/block/virtio_blk.ko.xz');
});

test('a module that does not exist is an error naming who needed it', () => {
  assert.throws(() => resolveLoadOrder(index, ['nosuch']), /kernel module nosuch not found/);
});
