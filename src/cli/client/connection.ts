import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export interface ConnectionOptions { url?: string; user?: string; key?: string; data?: string; as?: 'admin' | 'tenant' }

export interface Connection { url: string; user?: string; key: string; source: string }

/** A fault the user should read as one line; `exitCode` 1 unless said otherwise. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) { super(message); }
}

/** An application/problem+json answer of the REST API. */
export class ApiError extends CliError {
  constructor(readonly status: number, readonly title: string, readonly code: number | undefined, readonly detail: string) {
    super(`${title}${code === undefined ? '' : ` (${code})`}: ${detail}`);
  }
}

const HOW = 'run `kumo up` (it writes DATA/credentials.json; point at it with --data DIR) or set KUMO_URL, KUMO_USER and KUMO_KEY';

/** Users paste either the base URL or the REST URL that `kumo up` prints; both mean the same controller. */
const baseUrl = (u: string) => u.trim().replace(/\/+$/, '').replace(/\/v1$/, '');

function fromFile(data: string, who: 'admin' | 'tenant'): Partial<Connection> & { file: string } {
  const file = join(resolve(data), 'credentials.json');
  if (!existsSync(file)) return { file };
  let c: { restUrl?: string; admin?: { user?: string; key?: string }; tenant?: { user?: string; key?: string } };
  try { c = JSON.parse(readFileSync(file, 'utf8')); } catch (e) { throw new CliError(`cannot read ${file}: ${(e as Error).message}`); }
  return { file, url: c.restUrl, user: c[who]?.user, key: c[who]?.key };
}

/**
 * The URL comes from --url, KUMO_URL or DATA/credentials.json, in that order. User and key travel
 * as a pair from the first place that has a key: --key, KUMO_KEY (unless --as asks for a user of
 * credentials.json), credentials.json — a name from one place with a key from another would
 * authenticate as nobody.
 */
export function resolveConnection(o: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): Connection {
  let file: ReturnType<typeof fromFile> | undefined;
  const creds = () => (file ??= fromFile(o.data ?? './data', o.as ?? 'admin'));
  let key: string | undefined;
  let user: string | undefined;
  let source = 'flags';
  if (o.key) { key = o.key; user = o.user; }
  else if (env.KUMO_KEY && !o.as) { key = env.KUMO_KEY; user = o.user ?? (env.KUMO_USER || undefined); source = 'environment'; }
  else { key = creds().key; user = o.user ?? creds().user; source = creds().file; }
  const url = o.url ?? (env.KUMO_URL || undefined) ?? creds().url;
  if (!url || !key) {
    const missing = [!url && 'controller URL', !key && 'API key'].filter(Boolean).join(' and ');
    const f = creds();
    throw new CliError(`no ${missing}: ${existsSync(f.file) ? `${f.file} lacks it` : `${f.file} not found`}; ${HOW}`);
  }
  return { url: baseUrl(url), user, key, source };
}
