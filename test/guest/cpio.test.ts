import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { CpioWriter, readCpio } from '../../src/guest/cpio.js';

function sample(): CpioWriter {
  return new CpioWriter(0)
    .file('bin/busybox', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]), 0o755)
    .symlink('bin/sh', 'busybox')
    .charDevice('dev/console', 5, 1)
    .file('/etc/kumo-modules', 'virtio\next4\n')
    .dir('empty');
}

test('newc archive round-trips: parents first, root-owned, modes and devices kept', () => {
  const members = readCpio(sample().toBuffer());
  assert.deepEqual(members.map((m) => m.name), ['bin', 'bin/busybox', 'bin/sh', 'dev', 'dev/console', 'etc', 'etc/kumo-modules', 'empty']);
  const by = new Map(members.map((m) => [m.name, m]));
  assert.equal(by.get('bin')!.mode, 0o040755);
  assert.equal(by.get('bin/busybox')!.mode, 0o100755);
  assert.equal(by.get('bin/sh')!.mode, 0o120777);
  assert.equal(by.get('bin/sh')!.data.toString(), 'busybox');
  assert.deepEqual([by.get('dev/console')!.mode, by.get('dev/console')!.rdevMajor, by.get('dev/console')!.rdevMinor], [0o020600, 5, 1]);
  assert.equal(by.get('etc/kumo-modules')!.data.toString(), 'virtio\next4\n');
  assert.ok(members.every((m) => m.uid === 0 && m.gid === 0));
});

test('archives are reproducible and 4-byte aligned', () => {
  const a = sample().toBuffer();
  assert.deepEqual(a, sample().toBuffer());
  assert.equal(a.length % 4, 0);
  assert.match(a.subarray(a.length - 140).toString('latin1'), /TRAILER!!!/);
});

test('rejects duplicates, escapes and files over directories', () => {
  assert.throws(() => new CpioWriter().file('a', 'x').file('a', 'y'), /duplicate/);
  assert.throws(() => new CpioWriter().file('../x', 'x'), /bad archive path/);
  assert.throws(() => new CpioWriter().file('a', 'x').file('a/b', 'y'), /not a directory/);
});

test('GNU cpio reads what we write', { skip: spawnSync('cpio', ['--version']).status !== 0 && 'cpio not installed' }, () => {
  const listing = execFileSync('cpio', ['-itv', '--quiet'], { input: sample().toBuffer(), encoding: 'utf8' });
  assert.match(listing, /^lrwxrwxrwx .* bin\/sh -> busybox$/m);
  assert.match(listing, /^crw------- .* 5,\s+1 .* dev\/console$/m);
  assert.match(listing, /^-rwxr-xr-x .*\s7 .* bin\/busybox$/m);
});
