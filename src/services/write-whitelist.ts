import { readFileSync } from 'node:fs';
import { invalidParams } from '../core/errors.js';

/** What writeFile may touch when the operator names no whitelist file. */
export const DEFAULT_WRITE_WHITELIST = ['/etc/motd', '/etc/hosts', '/etc/kumo/**', '/home/*/.ssh/authorized_keys'];

const MAX_PATH = 4096;

/** Why `path` is not an absolute normalized path, or null when it is. Normalized means the guest
 * resolves it to itself: no `.`/`..` or empty segments that could step around the whitelist. */
function pathProblem(path: string): string | null {
  if (path.length > MAX_PATH) return `is longer than ${MAX_PATH} characters`;
  if (/[\x00-\x1f\x7f]/.test(path)) return 'contains NUL or control characters';
  if (!path.startsWith('/') || path === '/') return 'is not an absolute file path';
  if (path.slice(1).split('/').some((s) => s === '' || s === '.' || s === '..')) return 'is not normalized (no "//", trailing "/", "." or "..")';
  return null;
}

const escape = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

/** `*` is any run within one segment, `**` any segments: inside a pattern zero or more, at its end
 * one or more (so `/etc/kumo/**` is what is under /etc/kumo, not the directory itself). */
function compile(pattern: string): RegExp {
  const segs = pattern.slice(1).split('/');
  let re = '';
  segs.forEach((s, i) => {
    if (s === '**') re += i === segs.length - 1 ? '(?:/[^/]+)+' : '(?:/[^/]+)*';
    else re += `/${s.split('*').map(escape).join('[^/]*')}`;
  });
  return new RegExp(`^${re}$`);
}

export class WriteWhitelist {
  private readonly res: RegExp[];

  constructor(readonly patterns: readonly string[]) {
    for (const p of patterns) {
      const why = typeof p === 'string' ? pathProblem(p) : 'is not a string';
      if (why) throw new Error(`write whitelist pattern ${JSON.stringify(p)} ${why}`);
      if (p.split('/').some((s) => s.includes('**') && s !== '**')) throw new Error(`write whitelist pattern ${JSON.stringify(p)}: "**" must be a whole segment`);
    }
    this.res = patterns.map(compile);
  }

  /** INVALID_PARAMS naming the path unless it is absolute, normalized and whitelisted. */
  check(path: string): void {
    const shown = JSON.stringify(path.slice(0, 200));
    const why = pathProblem(path);
    if (why) throw invalidParams(`path ${shown} ${why}`);
    if (!this.res.some((r) => r.test(path))) throw invalidParams(`path ${shown} is not on the operator's writeFile whitelist`);
  }
}

/** The operator's whitelist: a JSON array of glob patterns in `file`, or the default without one. */
export function loadWriteWhitelist(file?: string): WriteWhitelist {
  if (file === undefined) return new WriteWhitelist(DEFAULT_WRITE_WHITELIST);
  let patterns: unknown;
  try {
    patterns = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`write whitelist ${file}: ${(e as Error).message}`);
  }
  if (!Array.isArray(patterns)) throw new Error(`write whitelist ${file} must be a JSON array of glob patterns`);
  try {
    return new WriteWhitelist(patterns);
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}
