import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { ec2Path } from '../../src/metadata/ec2.js';
import { issueToken, MAX_TTL_SECONDS, parseTtl, tokenValid } from '../../src/metadata/imds-token.js';
import type { Reply } from '../../src/metadata/reply.js';
import { vmA } from './fixtures.js';

const at = (path: string, md = vmA()): Reply | null => ec2Path(md, path.split('/').filter(Boolean));
const lines = (r: Reply | null): string[] => String(r?.body).split('\n');

test('versions and the meta-data listing, subtrees marked with a trailing slash', () => {
  assert.deepEqual(lines(at('/')), ['1.0', '2009-04-04', 'latest']);
  assert.deepEqual(lines(at('/latest')), ['meta-data', 'user-data']);
  assert.deepEqual(lines(at('/latest/meta-data/')),
    ['hostname', 'instance-id', 'local-hostname', 'local-ipv4', 'placement/', 'public-keys/']);
  assert.deepEqual(lines(at('/2009-04-04/meta-data/')), lines(at('/latest/meta-data/')));
  for (const p of ['/', '/latest/meta-data/', '/latest/meta-data/instance-id']) assert.match(String(at(p)?.type), /^text\/plain/);
});

test('leaves answer plain values', () => {
  assert.equal(at('/latest/meta-data/instance-id')?.body, vmA().vmId);
  assert.equal(at('/latest/meta-data/hostname')?.body, 'web-1.tenant-a.kumo');
  assert.equal(at('/latest/meta-data/local-hostname')?.body, 'web-1.tenant-a.kumo');
  assert.equal(at('/latest/meta-data/local-ipv4')?.body, '10.1.0.5');
  assert.equal(at('/latest/meta-data/placement/availability-zone')?.body, 'tokyo-1');
  assert.deepEqual(lines(at('/latest/meta-data/placement/')), ['availability-zone']);
});

test('public-keys lists index=name, and each index holds its openssh-key', () => {
  assert.deepEqual(lines(at('/latest/meta-data/public-keys/')), ['0=alice', '1=ci']);
  assert.deepEqual(lines(at('/latest/meta-data/public-keys/1/')), ['openssh-key']);
  assert.equal(at('/latest/meta-data/public-keys/0/openssh-key')?.body, vmA().publicKeys[0].key);
  assert.equal(at('/latest/meta-data/public-keys/1/openssh-key')?.body, vmA().publicKeys[1].key);
});

test('a key name cannot forge listing lines', () => {
  const md = vmA({ publicKeys: [{ name: 'x\nsecurity-credentials/', key: 'ssh-ed25519 AAAA' }] });
  assert.deepEqual(lines(at('/latest/meta-data/public-keys/', md)), ['0=x_security-credentials/']);
});

test('absent things are absent: no keys, no address, no user-data', () => {
  const md = vmA({ publicKeys: [], localIpv4: null, userData: null });
  assert.deepEqual(lines(at('/latest/meta-data/', md)), ['hostname', 'instance-id', 'local-hostname', 'placement/']);
  assert.deepEqual(lines(at('/latest', md)), ['meta-data']);
  for (const p of ['/latest/meta-data/public-keys/', '/latest/meta-data/local-ipv4', '/latest/user-data']) assert.equal(at(p, md), null, p);
});

test('user-data is the raw bytes', () => {
  const r = at('/latest/user-data');
  assert.equal(r?.type, 'application/octet-stream');
  assert.deepEqual(r?.body, vmA().userData);
});

test('unknown paths are 404, including past a leaf and inherited object names', () => {
  for (const p of ['/2020-01-01/meta-data/', '/latest/meta-data/nope', '/latest/meta-data/instance-id/x',
    '/latest/meta-data/public-keys/2/openssh-key', '/latest/meta-data/constructor', '/latest/meta-data/__proto__', '/latest/dynamic', '/latest/user-data/x']) {
    assert.equal(at(p), null, p);
  }
});

test('token TTL: whole seconds 1..21600, anything else refused', () => {
  assert.equal(parseTtl('1'), 1);
  assert.equal(parseTtl('21600'), MAX_TTL_SECONDS);
  for (const bad of [undefined, '', '0', '21601', '-1', '1.5', ' 60', '60s', '99999', ['60', '60']]) assert.equal(parseTtl(bad), null, String(bad));
});

test('tokens are bound to the VM, the secret and the expiry', () => {
  const secret = randomBytes(32);
  const t0 = 1_700_000_000_000;
  const token = issueToken(secret, 'vm-a', 60, t0);
  assert.ok(tokenValid(secret, 'vm-a', token, t0));
  assert.ok(tokenValid(secret, 'vm-a', token, t0 + 59_999));
  assert.ok(!tokenValid(secret, 'vm-a', token, t0 + 60_000), 'expired');
  assert.ok(!tokenValid(secret, 'vm-b', token, t0), 'another VM');
  assert.ok(!tokenValid(randomBytes(32), 'vm-a', token, t0), 'another secret');
  const [, sig] = token.split('.');
  assert.ok(!tokenValid(secret, 'vm-a', `${t0 + 3_600_000}.${sig}`, t0), 'expiry cannot be extended');
});

test('property: no mangled or foreign token is accepted', () => {
  const secret = randomBytes(32);
  const t0 = 1_700_000_000_000;
  const token = issueToken(secret, 'vm-a', 600, t0);
  fc.assert(fc.property(fc.string({ maxLength: 80 }), fc.string({ minLength: 1, maxLength: 20 }), (junk, other) => {
    if (junk !== token) assert.ok(!tokenValid(secret, 'vm-a', junk, t0));
    if (other !== 'vm-a') assert.ok(!tokenValid(secret, other, token, t0));
  }));
});
