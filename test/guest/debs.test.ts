import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kernelFromDepends, parseDepends, parseStanzas, versionKey } from '../../src/guest/debs.js';

test('apt-cache show output: stanzas, and the concrete kernel behind the meta package', () => {
  const text = [
    'Package: linux-image-amd64',
    'Version: 6.1.192-2',
    'Depends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)',
    'Description: Linux for 64-bit PCs (meta-package)',
    ' This package depends on the latest Linux kernel',
    '',
    'Package: busybox-static',
    'Version: 1:1.35.0-4+deb12u1+b1',
    '',
  ].join('\n');
  const [meta, bb] = parseStanzas(text);
  assert.equal(meta.get('Description'), 'Linux for 64-bit PCs (meta-package) This package depends on the latest Linux kernel');
  assert.equal(bb.get('Version'), '1:1.35.0-4+deb12u1+b1');
  assert.deepEqual(kernelFromDepends('linux-image-amd64', meta.get('Depends')!), { name: 'linux-image-6.1.0-56-amd64', version: '6.1.192-2' });
});

test('Depends parsing keeps the first alternative and version constraints', () => {
  assert.deepEqual(parseDepends('kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, libc6:amd64'), [
    { name: 'kmod' },
    { name: 'linux-base', op: '>=', version: '4.3~' },
    { name: 'initramfs-tools', op: '>=', version: '0.120+deb8u2' },
    { name: 'libc6' },
  ]);
  assert.throws(() => kernelFromDepends('linux-image-amd64', 'kmod'), /does not depend/);
  assert.throws(() => kernelFromDepends('linux-image-amd64', 'linux-image-6.1.0-56-amd64 (>= 6.1)'), /exact version/);
});

test('epoch colons are escaped in cache file names as apt does', () => {
  assert.equal(versionKey('1:1.35.0-4+deb12u1+b1'), '1%3a1.35.0-4+deb12u1+b1');
});
