import { ApiError, CliError, type Connection } from './connection.js';

export interface HttpRequest { method: string; path: string; query?: Record<string, unknown>; body?: unknown; timeoutMs?: number }

/** JSON over HTTP to one controller, authenticated as one API user. */
export class Client {
  constructor(readonly conn: Connection) {}

  private get authorization(): string {
    return this.conn.user === undefined
      ? `Bearer ${this.conn.key}`
      : `Basic ${Buffer.from(`${this.conn.user}:${this.conn.key}`).toString('base64')}`;
  }

  /** The parsed JSON body, or null for 204; non-2xx answers become an ApiError. */
  async send(r: HttpRequest): Promise<unknown> {
    const url = new URL(this.conn.url + r.path);
    for (const [k, v] of Object.entries(r.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { authorization: this.authorization, accept: 'application/json' };
    if (r.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method: r.method, headers, body: r.body === undefined ? undefined : JSON.stringify(r.body),
        signal: AbortSignal.timeout(r.timeoutMs ?? 60_000),
      });
    } catch (e) {
      const err = e as Error & { cause?: Error };
      throw new CliError(`cannot reach the controller at ${this.conn.url}: ${err.cause?.message ?? err.message}`);
    }
    const text = await res.text();
    let body: unknown = null;
    if (text) {
      try { body = JSON.parse(text); } catch { if (res.ok) throw new CliError(`${r.method} ${url.pathname}: the controller answered with something other than JSON`); }
    }
    if (res.ok) return res.status === 204 ? null : body;
    const p = (body ?? {}) as { title?: string; code?: number; detail?: string; message?: string; error?: string };
    const detail = p.detail ?? p.message ?? (text.slice(0, 200) || res.statusText);
    const hint = res.status === 401 ? ` (credentials from ${this.conn.source})` : '';
    throw new ApiError(res.status, p.title ?? p.error ?? `HTTP ${res.status}`, p.code, detail + hint);
  }
}
