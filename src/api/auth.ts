import type { FastifyRequest } from 'fastify';
import type { Services } from '../services/index.js';
import type { Principal } from '../services/principal.js';

/** HTTP Basic (user:key) or `Authorization: Bearer KEY`; null when missing or wrong. */
export async function authenticate(s: Services, req: FastifyRequest): Promise<Principal | null> {
  const h = req.headers.authorization;
  if (!h) return null;
  const [scheme, value] = h.split(' ', 2);
  if (!value) return null;
  if (scheme.toLowerCase() === 'bearer') return s.tenants.authenticate(null, value);
  if (scheme.toLowerCase() !== 'basic') return null;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return s.tenants.authenticate(decoded.slice(0, colon), decoded.slice(colon + 1));
}
