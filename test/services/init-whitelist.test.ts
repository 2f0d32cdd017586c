import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Fault, KumoError } from '../../src/core/errors.js';
import { checkUserData } from '../../src/services/guest-config.js';
import { DEFAULT_WRITE_WHITELIST, WriteWhitelist, loadWriteWhitelist } from '../../src/services/write-whitelist.js';

const refused = (f: () => void, msg: RegExp) => assert.throws(f, (e) => e instanceof KumoError && e.code === Fault.INVALID_PARAMS && msg.test(e.message));

test('whitelist globs: * within one segment, ** across segments (one or more at the end)', () => {
  const w = new WriteWhitelist(['/etc/motd', '/etc/kumo/**', '/home/*/.ssh/authorized_keys', '/srv/**/conf.d/*.conf', '/opt/app-*.ini']);
  for (const ok of ['/etc/motd', '/etc/kumo/a', '/etc/kumo/a/b/c', '/home/alice/.ssh/authorized_keys', '/srv/conf.d/x.conf',
    '/srv/a/b/conf.d/.conf', '/opt/app-1.ini', '/opt/app-.ini']) assert.doesNotThrow(() => w.check(ok), ok);
  for (const no of ['/etc/motd2', '/etc/kumo', '/etc/kumox/a', '/home/alice/bob/.ssh/authorized_keys', '/home/.ssh/authorized_keys',
    '/srv/conf.d/sub/x.conf', '/opt/app-1xini', '/etc/shadow']) refused(() => w.check(no), new RegExp(`path "${no}" is not on the operator's writeFile whitelist`));
});

test('whitelist paths must be absolute, normalized, short and free of control characters', () => {
  const w = new WriteWhitelist(['/**']);
  w.check('/etc/anything');
  for (const [bad, why] of [['etc/motd', /not an absolute/], ['/', /not an absolute/], ['/etc/../shadow', /not normalized/], ['/etc/./motd', /not normalized/],
    ['/etc//motd', /not normalized/], ['/etc/kumo/', /not normalized/], ['/etc/mo\0td', /NUL/], ['/etc/mo\ntd', /control/],
    [`/${'a'.repeat(4096)}`, /longer than 4096/]] as const) refused(() => w.check(bad), why);
});

test('the default whitelist, and the operator\'s file: a JSON array of absolute patterns', () => {
  assert.deepEqual(loadWriteWhitelist().patterns, DEFAULT_WRITE_WHITELIST);
  loadWriteWhitelist().check('/home/bob/.ssh/authorized_keys');
  refused(() => loadWriteWhitelist().check('/root/.ssh/authorized_keys'), /not on the operator's writeFile whitelist/);
  const dir = mkdtempSync(join(tmpdir(), 'kumo-wl-'));
  try {
    const file = (name: string, text: string) => { const f = join(dir, name); writeFileSync(f, text); return f; };
    const w = loadWriteWhitelist(file('ok.json', '["/var/www/**"]'));
    w.check('/var/www/index.html');
    refused(() => w.check('/etc/motd'), /whitelist/);
    assert.throws(() => loadWriteWhitelist(file('bad.json', '["/a"')), /bad\.json/);
    assert.throws(() => loadWriteWhitelist(file('obj.json', '{"a":1}')), /must be a JSON array/);
    assert.throws(() => loadWriteWhitelist(file('rel.json', '["etc/*"]')), /"etc\/\*" is not an absolute/);
    assert.throws(() => loadWriteWhitelist(file('dots.json', '["/etc/../x"]')), /not normalized/);
    assert.throws(() => loadWriteWhitelist(file('star.json', '["/etc/a**"]')), /whole segment/);
    assert.throws(() => loadWriteWhitelist(file('num.json', '[1]')), /not a string/);
    assert.throws(() => loadWriteWhitelist(join(dir, 'missing.json')), /missing\.json/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('user-data: up to 64 KiB, counted in bytes', () => {
  checkUserData('#!/bin/sh\necho hi\n');
  checkUserData(Buffer.alloc(65536));
  refused(() => checkUserData(Buffer.alloc(65537)), /65537 bytes; at most 65536/);
  // 32,769 two-byte characters: within 64 Ki characters, over 64 KiB.
  refused(() => checkUserData('é'.repeat(32769)), /65538 bytes/);
});
