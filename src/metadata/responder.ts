/**
 * The metadata service's HTTP handler: routes a guest's request to the OpenStack or EC2 tree, the
 * IMDSv2 token flow, or kumo's guest-agent endpoints (config as JSON, or as lines with
 * `format=lines`: see agent-lines.ts). Which VM is asking comes only from
 * `identify`, which the agent bases on the connection (the tap it arrived on); nothing the guest
 * sends — path, query, Host, X-Forwarded-For, any header, the body — takes part in it, so a VM can
 * only ever read its own data.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { agentConfig } from './agent-config.js';
import { agentLines } from './agent-lines.js';
import { ec2Path } from './ec2.js';
import { issueToken, parseTtl, TOKEN_HEADER, tokenValid, TTL_HEADER } from './imds-token.js';
import { openstackPath } from './openstack.js';
import { empty, failure, json, text, type Reply } from './reply.js';
import type { VmMetadata } from './types.js';
import { Waiters } from './waiters.js';

export interface ResponderOptions {
  /** The VM a request comes from, from the connection alone; null refuses it (403). */
  identify(req: IncomingMessage): Promise<string | null>;
  lookup(vmId: string): Promise<VmMetadata | null>;
  /** Signs IMDSv2 tokens; at least 32 random bytes, kept per responder. */
  secret: Buffer;
  /**
   * Whether EC2 GETs without a token are answered (IMDSv1). Default true: cloud-init's OpenStack
   * datasource crawls the EC2 tree without a token, as OpenStack's EC2-compatible API allows.
   * A token that is present but bad, expired or another VM's is refused (401) either way.
   */
  allowV1?: boolean;
  /** The guest agent reports the generation it applied (POST /kumo/v1/applied). */
  onApplied(vmId: string, generation: number): Promise<void> | void;
  /** Milliseconds since the epoch; injected so token expiry can be tested. */
  now?: () => number;
}

/** Token PUTs carry no body; the applied report is one small JSON object. */
const TOKEN_BODY_LIMIT = 1024;
const APPLIED_BODY_LIMIT = 4096;
const MAX_WAIT_SECONDS = 60;
const READ_METHODS = 'GET, HEAD';

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        reject(new BodyTooLarge());
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Non-negative safe integer from a query parameter; `fallback` when absent, null when malformed. */
function whole(value: string | null, fallback: number): number | null {
  if (value === null) return fallback;
  return /^\d{1,15}$/.test(value) ? Number(value) : null;
}

export class MetadataResponder {
  private readonly waiters = new Waiters();
  private readonly allowV1: boolean;
  private readonly now: () => number;

  constructor(private readonly opts: ResponderOptions) {
    if (opts.secret.length < 32) throw new Error('metadata responder: the token secret needs at least 32 bytes');
    this.allowV1 = opts.allowV1 ?? true;
    this.now = opts.now ?? Date.now;
  }

  /** For `http.createServer(responder.handle)`. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const gone = new AbortController();
    // Only a client that left before its answer aborts (a long-poll); aborting finished ones costs a DOMException each.
    res.on('close', () => { if (!res.writableFinished) gone.abort(); });
    this.route(req, gone.signal).then(
      (reply) => send(res, reply),
      (err: unknown) => send(res, err instanceof BodyTooLarge ? failure(413, { connection: 'close' }) : failure(500)),
    );
  };

  /** The VM's configuration changed: answer its pending long-polls. */
  notify(vmId: string): void {
    this.waiters.notify(vmId);
  }

  /** Answers every pending long-poll with 304 now, and any later one at once. */
  close(): void {
    this.waiters.close();
  }

  get pendingPolls(): number {
    return this.waiters.size;
  }

  private async route(req: IncomingMessage, gone: AbortSignal): Promise<Reply | null> {
    // A fixed base: an absolute-form request target or a Host header cannot steer anything.
    const url = new URL(req.url ?? '/', 'http://metadata.invalid');
    const path = url.pathname.split('/').filter((s) => s !== '');
    const method = req.method ?? 'GET';
    const vmId = await this.opts.identify(req);
    if (vmId === null) return failure(403);

    const at = path.join('/');
    if (at === 'latest/api/token') return method === 'PUT' ? this.token(req, vmId) : notAllowed('PUT');
    if (at === 'kumo/v1/config') return method === 'GET' ? this.config(vmId, url.searchParams, gone) : notAllowed('GET');
    if (at === 'kumo/v1/applied') return method === 'POST' ? this.applied(req, vmId) : notAllowed('POST');

    const openstack = path[0] === 'openstack';
    if (!openstack) {
      const token = req.headers[TOKEN_HEADER];
      if (token === undefined ? !this.allowV1 : typeof token !== 'string' || !tokenValid(this.opts.secret, vmId, token, this.now())) {
        return failure(401);
      }
    }
    const md = await this.opts.lookup(vmId);
    const reply = md && (openstack ? openstackPath(md, path.slice(1)) : ec2Path(md, path));
    if (!reply) return failure(404);
    return method === 'GET' || method === 'HEAD' ? reply : notAllowed(READ_METHODS);
  }

  private async token(req: IncomingMessage, vmId: string): Promise<Reply> {
    await readBody(req, TOKEN_BODY_LIMIT);
    const ttl = parseTtl(req.headers[TTL_HEADER]);
    if (ttl === null) return failure(400);
    return { ...text(issueToken(this.opts.secret, vmId, ttl, this.now())), headers: { [TTL_HEADER]: String(ttl) } };
  }

  /**
   * Answers as soon as the VM's generation is newer than `after` (at once if it already is), else
   * when notify() brings a newer one, else 304 after `wait` seconds. A notify without a newer
   * generation (a racing read, a no-op change) just goes back to waiting for the time left.
   */
  private async config(vmId: string, query: URLSearchParams, gone: AbortSignal): Promise<Reply | null> {
    const after = whole(query.get('after'), -1);
    const wait = whole(query.get('wait'), 0);
    const format = query.get('format') ?? 'json';
    if (after === null || wait === null || wait > MAX_WAIT_SECONDS || (format !== 'json' && format !== 'lines')) return failure(400);
    const deadline = Date.now() + wait * 1000;
    for (;;) {
      const waiter = this.waiters.register(vmId);
      try {
        const md = await this.opts.lookup(vmId);
        if (!md) return failure(404);
        if (md.generation > after) return format === 'lines' ? text(agentLines(md)) : json(agentConfig(md));
        const left = deadline - Date.now();
        if (left <= 0 || this.waiters.isClosed) return empty(304);
        await waiter.sleep(left, gone);
        if (gone.aborted) return null;
      } finally {
        waiter.dispose();
      }
    }
  }

  private async applied(req: IncomingMessage, vmId: string): Promise<Reply> {
    let generation: unknown;
    try {
      generation = (JSON.parse((await readBody(req, APPLIED_BODY_LIMIT)).toString('utf8')) as { generation?: unknown })?.generation;
    } catch (err) {
      if (err instanceof BodyTooLarge) throw err;
      return failure(400);
    }
    if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) return failure(400);
    const md = await this.opts.lookup(vmId);
    if (!md) return failure(404);
    // A guest cannot have applied a generation that was never handed out.
    if (generation > md.generation) return failure(409);
    await this.opts.onApplied(vmId, generation);
    return empty(204);
  }
}

export function metadataHandler(opts: ResponderOptions): MetadataResponder {
  return new MetadataResponder(opts);
}

function notAllowed(allow: string): Reply {
  // The body of a refused request is never read, so the connection cannot be reused after it.
  return failure(405, { allow, connection: 'close' });
}

/** null: the client left (long-poll); there is no one to answer. */
function send(res: ServerResponse, reply: Reply | null): void {
  if (reply === null || res.headersSent || res.destroyed) return;
  if (reply.status === 204 || reply.status === 304) {
    res.writeHead(reply.status, reply.headers).end();
    return;
  }
  res.writeHead(reply.status, {
    'content-type': reply.type,
    'content-length': Buffer.byteLength(reply.body),
    ...reply.headers,
  });
  res.end(reply.body);
}
