import { invalidParams } from '../core/errors.js';

const NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._@:-]{0,62}$/u;

/** Names appear in CLIs, logs and hostnames: short, printable, no leading punctuation. */
export function checkName(name: string, what = 'name'): void {
  if (!NAME.test(name)) throw invalidParams(`${what} must be 1–63 letters, digits, spaces or ._@:- and start with a letter or digit (got ${JSON.stringify(name.slice(0, 40))}${name.length > 40 ? '…' : ''})`);
}

export function checkRange(v: number, min: number, max: number, what: string): void {
  if (!Number.isInteger(v) || v < min || v > max) throw invalidParams(`${what} must be an integer from ${min} to ${max} (got ${v})`);
}
