import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import fc from 'fast-check';
import { hashPassword, sha512Crypt } from '../../src/core/sha512-crypt.js';

// Drepper, "Unix crypt using SHA-256 and SHA-512", the SHA-512 test vectors (the last: rounds
// below the minimum are raised to 1000).
const VECTORS: [string, string, number | undefined, string][] = [
  ['saltstring', 'Hello world!', undefined,
    '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
  ['saltstringsaltstring', 'Hello world!', 10000,
    '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.'],
  ['toolongsaltstring', 'This is just a test', 5000,
    '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0'],
  ['anotherlongsaltstring', 'a very much longer text to encrypt.  This one even stretches over morethan one line.', 1400,
    '$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1'],
  ['short', 'we have a short salt string but not a short password', 77777,
    '$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0'],
  ['asaltof16chars..', 'a short string', 123456,
    '$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1'],
  ['roundstoolow', 'the minimum number is still observed', 10,
    '$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.'],
];

test('sha512Crypt: the specification\'s test vectors', () => {
  for (const [salt, password, rounds, want] of VECTORS) assert.equal(sha512Crypt(password, salt, rounds), want);
});

const openssl = (salt: string, password: string) => {
  // -stdin: a password starting with "-" would be read as an option on the command line.
  const r = spawnSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], { input: `${password}\n`, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
};

test('sha512Crypt agrees with `openssl passwd -6` on random printable passwords and salts', () => {
  const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 80 });
  const salt = fc.string({ unit: fc.constantFrom(...'./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'), minLength: 1, maxLength: 16 });
  // Not empty: openssl -stdin reads no password from an empty line (setPassword refuses one anyway).
  fc.assert(fc.property(printable, salt, (p, s) => { assert.equal(sha512Crypt(p, s), openssl(s, p)); }), { numRuns: 40 });
});

test('hashPassword: a fresh 16-character salt each time, and the hash its salt reproduces', () => {
  const a = hashPassword('s3cret');
  const b = hashPassword('s3cret');
  const m = /^\$6\$([./0-9A-Za-z]{16})\$[./0-9A-Za-z]{86}$/.exec(a);
  assert.ok(m, a);
  assert.notEqual(a, b);
  assert.equal(sha512Crypt('s3cret', m[1]), a);
  assert.ok(!a.includes('s3cret'));
});
