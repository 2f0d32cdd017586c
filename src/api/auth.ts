import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../services/index.js';
import type { Principal } from '../services/principal.js';

/** HTTP Basic (user:key) or `Authorization: Bearer KEY`; null when missing or wrong. Cached by the
 * header's exact value (services/tenants.ts authenticatePresented), so a repeat caller's header is
 * neither decoded nor hashed again. */
export async function authenticate(s: Services, req: FastifyRequest): Promise<Principal | null> {
  const h = req.headers.authorization;
  if (!h) return null;
  return s.tenants.authenticatePresented(h, credentialsOf);
}

/** User and key from an Authorization header value; null when it is neither Basic nor Bearer, or malformed. */
export function credentialsOf(h: string): { user: string | null; key: string } | null {
  const [scheme, value] = h.split(' ', 2);
  if (!value) return null;
  if (scheme.toLowerCase() === 'bearer') return { user: null, key: value };
  if (scheme.toLowerCase() !== 'basic') return null;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), key: decoded.slice(colon + 1) };
}

/** The REST answer to a call without valid credentials (XML-RPC answers 401 in its own words). */
export const unauthenticated = (reply: FastifyReply) => reply.code(401).header('www-authenticate', 'Basic realm="kumo"')
  .type('application/problem+json').send({ title: 'UNAUTHENTICATED', status: 401, detail: 'API user and key required (HTTP Basic or Bearer)' });
