/**
 * IMDSv2 session tokens. A token is `<expiry ms>.<HMAC-SHA256(secret, vmId, expiry)>`: stateless
 * (a boot storm costs no memory), bound to the VM the connection was identified as (VM B cannot use
 * a token A leaked to it), and dead after its TTL or when the responder's secret changes (agent
 * restart: clients ask for a new one on 401, as they must on AWS).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
export const MAX_TTL_SECONDS = 21600;

/** AWS's bounds: a whole number of seconds, 1..21600; anything else is a 400. */
export function parseTtl(header: string | string[] | undefined): number | null {
  if (typeof header !== 'string' || !/^\d{1,5}$/.test(header)) return null;
  const ttl = Number(header);
  return ttl >= 1 && ttl <= MAX_TTL_SECONDS ? ttl : null;
}

function mac(secret: Buffer, vmId: string, expiresMs: number): Buffer {
  return createHmac('sha256', secret).update(`kumo-imds-v2\0${vmId}\0${expiresMs}`).digest();
}

export function issueToken(secret: Buffer, vmId: string, ttlSeconds: number, nowMs: number): string {
  const expiresMs = nowMs + ttlSeconds * 1000;
  return `${expiresMs}.${mac(secret, vmId, expiresMs).toString('base64url')}`;
}

export function tokenValid(secret: Buffer, vmId: string, token: string, nowMs: number): boolean {
  const m = /^(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return false;
  const expiresMs = Number(m[1]);
  const given = Buffer.from(m[2], 'base64url');
  return timingSafeEqual(given, mac(secret, vmId, expiresMs)) && nowMs < expiresMs;
}
