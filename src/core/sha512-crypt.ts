import { createHash, randomBytes } from 'node:crypto';

/**
 * SHA-512 crypt (`$6$`), Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512": the format of
 * /etc/shadow that guests (and cloud-init's `hashed_passwd`) accept. Written out because node has
 * no crypt(3) and the guest must receive a hash it can store as is.
 */

const ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const DEFAULT_ROUNDS = 5000;
const MIN_ROUNDS = 1000;
const MAX_ROUNDS = 999_999_999;
const MAX_SALT = 16;

/** The spec's byte order: each triple becomes four characters, the last lone byte two. */
const ORDER = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7],
  [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57],
  [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
];

const sha512 = (...parts: Buffer[]) => {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** `n` bytes of `block` repeated (the spec's "for each block of 64 bytes … the remaining bytes"). */
const stretch = (block: Buffer, n: number) => Buffer.concat(Array(Math.ceil(n / 64)).fill(block)).subarray(0, n);

function encode(d: Buffer): string {
  let out = '';
  const put = (w: number, chars: number) => { for (let i = 0; i < chars; i++, w >>= 6) out += ALPHABET[w & 63]; };
  for (const [a, b, c] of ORDER) put((d[a] << 16) | (d[b] << 8) | d[c], 4);
  put(d[63], 2);
  return out;
}

/**
 * The `$6$` hash of `password` with `salt` (its first 16 bytes, up to any `$`, as glibc takes it).
 * `rounds` is clamped to the spec's 1000…999999999 and written into the hash unless omitted.
 */
export function sha512Crypt(password: string | Buffer, salt: string, rounds?: number): string {
  const p = Buffer.isBuffer(password) ? password : Buffer.from(password, 'utf8');
  const s = Buffer.from(salt.split('$')[0], 'utf8').subarray(0, MAX_SALT);
  const r = rounds === undefined ? DEFAULT_ROUNDS : Math.min(MAX_ROUNDS, Math.max(MIN_ROUNDS, Math.floor(rounds)));

  const b = sha512(p, s, p);
  const a = createHash('sha512').update(p).update(s).update(stretch(b, p.length));
  for (let n = p.length; n > 0; n >>= 1) a.update(n & 1 ? b : p);
  let c = a.digest();

  const pBytes = stretch(sha512(...Array<Buffer>(p.length).fill(p)), p.length);
  const sBytes = stretch(sha512(...Array<Buffer>(16 + c[0]).fill(s)), s.length);

  for (let i = 0; i < r; i++) {
    const h = createHash('sha512');
    h.update(i & 1 ? pBytes : c);
    if (i % 3) h.update(sBytes);
    if (i % 7) h.update(pBytes);
    h.update(i & 1 ? c : pBytes);
    c = h.digest();
  }
  return `$6$${rounds === undefined ? '' : `rounds=${r}$`}${s.toString('utf8')}$${encode(c)}`;
}

/** A fresh hash of `password` with 16 random salt characters and the default rounds. */
export function hashPassword(password: string): string {
  const salt = [...randomBytes(MAX_SALT)].map((x) => ALPHABET[x & 63]).join('');
  return sha512Crypt(password, salt);
}
