import { createReadStream } from 'node:fs';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Fault, KumoError } from '../core/errors.js';
import type { Services } from '../services/index.js';
import { MAX_IMAGE_BYTES } from '../services/images.js';
import { CONTROLLER_PATHS } from '../agent/protocol.js';
import { authenticate, unauthenticated } from './auth.js';
import { problem } from './faults.js';

const bearer = (req: FastifyRequest) => /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';

const sendFault = (reply: FastifyReply, e: unknown, status?: number) => {
  if (!(e instanceof KumoError)) throw e;
  const body = { ...problem(e), ...(status ? { status } : {}) };
  return reply.code(body.status).type('application/problem+json').send(body);
};

export const UPLOAD_PATH = '/v1/images/:name/disk';

/**
 * Image files over HTTP, outside the 1 MiB JSON API: agents download an image's files with their
 * node token, and administrators upload a raw disk (`kumo image import`).
 */
export async function imageRoutes(app: FastifyInstance, s: Services): Promise<void> {
  const isAgent = async (req: FastifyRequest) => {
    const token = bearer(req);
    return token !== '' && (await s.hosts.byToken(token)).length > 0;
  };
  const hide = { schema: { hide: true } as never };

  app.get<{ Params: { imageId: string } }>(CONTROLLER_PATHS.image(':imageId'), hide, async (req, reply) => {
    if (!(await isAgent(req))) return reply.code(401).send({ error: 'node token required' });
    try { return await s.images.agentMeta(req.params.imageId); } catch (e) { return sendFault(reply, e); }
  });

  // Streamed from disk, never buffered; only names listed among the image's files are served.
  app.get<{ Params: { imageId: string; file: string } }>(CONTROLLER_PATHS.imageFile(':imageId', ':file'), hide, async (req, reply) => {
    if (!(await isAgent(req))) return reply.code(401).send({ error: 'node token required' });
    try {
      const f = await s.images.filePath(req.params.imageId, req.params.file);
      return reply.header('content-length', String(f.size)).type('application/octet-stream').send(createReadStream(f.path));
    } catch (e) { return sendFault(reply, e); }
  });

  await app.register(async (x) => {
    // The body is a stream handed to the image store, which enforces its own limit (the largest
    // volume) instead of the JSON API's 1 MiB; no schema validation of a byte stream.
    x.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    x.setValidatorCompiler(() => () => true);
    const Result = {
      type: 'object',
      properties: { imageId: { type: 'string' }, name: { type: 'string' }, sizeGiB: { type: 'integer' }, sha256: { type: 'string' }, changed: { type: 'boolean' }, created: { type: 'boolean' } },
    };
    x.put<{ Params: { name: string }; Querystring: { os?: string; kind?: string; source?: string; tenantId?: string } }>(UPLOAD_PATH, {
      schema: {
        operationId: 'uploadImageDisk', tags: ['Images'],
        summary: 'Create or replace an image from a raw disk (admin; REST only)',
        description: 'The body is the raw disk image itself (`application/octet-stream`), streamed; `Content-Encoding: gzip` is '
          + 'accepted and recommended (zeros compress well). Not subject to the 1 MiB limit of the JSON operations: '
          + `the limit is the largest volume, ${MAX_IMAGE_BYTES / 1024 ** 3} GiB. Send it chunked (no Content-Length), e.g. `
          + '`curl -T disk.raw -H "Transfer-Encoding: chunked" -H "Content-Type: application/octet-stream" -u USER:KEY URL/v1/images/NAME/disk?os=linux`. '
          + 'The image boots by firmware (BIOS) from its disk. Convert other formats first (`qemu-img convert -O raw`); '
          + '`kumo image import FILE --name NAME` does both. Idempotent by name: the same bytes change nothing (200, changed=false), '
          + 'new bytes replace the disk and keep the image id (200), a new name creates an image (201). '
          + 'A public image unless tenantId names the tenant that owns it.',
        params: { type: 'object', properties: { name: { type: 'string', maxLength: 63, description: 'image name' } }, required: ['name'] },
        querystring: {
          type: 'object', properties: {
            os: { type: 'string', maxLength: 64, description: 'operating system, e.g. linux (default unknown)' },
            kind: { type: 'string', maxLength: 32, description: 'default imported' },
            source: { type: 'string', maxLength: 1024, description: 'where the image came from, shown by getImageInfo' },
            tenantId: { type: 'string', maxLength: 64, description: 'owner of a private image (default: public)' },
          },
        },
        consumes: ['application/octet-stream'],
        body: { type: 'string', format: 'binary', description: 'the raw disk' },
        response: { 200: Result, 201: Result },
      } as never,
    }, async (req, reply) => {
      const principal = await authenticate(s, req);
      if (!principal) {
        return unauthenticated(reply);
      }
      const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (encoding !== 'identity' && encoding !== 'gzip') {
        return sendFault(reply, new KumoError(Fault.INVALID_REQUEST, `Content-Encoding ${encoding} is not accepted; send gzip or identity`), 415);
      }
      if (!req.body || typeof (req.body as Readable).pipe !== 'function') {
        return sendFault(reply, new KumoError(Fault.INVALID_REQUEST, 'send the raw disk as the body with Content-Type: application/octet-stream'));
      }
      const raw = req.body as Readable;
      const body = encoding === 'gzip' ? pipeline(raw, createGunzip(), () => {}) : raw;
      const q = req.query;
      try {
        const r = await s.images.upload(principal, {
          name: req.params.name, os: q.os ?? 'unknown', kind: q.kind ?? 'imported', source: q.source ?? `uploaded by ${principal.userName}`, tenantId: q.tenantId ?? null,
        }, body);
        return reply.code(r.created ? 201 : 200).send(r);
      } catch (e) {
        raw.resume();
        if (!(e instanceof KumoError)) req.log.warn({ err: (e as Error).message }, 'image upload failed');
        return sendFault(reply, e instanceof KumoError ? e : new KumoError(Fault.INVALID_REQUEST, `upload failed: ${(e as Error).message}`));
      }
    });
  });
}

/** Image uploads stream past the 1 MiB limit of the JSON and XML-RPC routes. */
export const isImageUpload = (method: string, url: string) => method === 'PUT' && /^\/v1\/images\/[^/?]+\/disk(\?|$)/.test(url);
