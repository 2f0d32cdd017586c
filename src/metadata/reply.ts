/**
 * The pure format modules answer with a Reply instead of writing to a response, so they can be
 * tested without a server and the responder stays the only place that touches HTTP.
 */

export interface Reply {
  status: number;
  type: string;
  body: string | Buffer;
  headers?: Record<string, string>;
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json';
export const OCTETS = 'application/octet-stream';

export function text(body: string): Reply {
  return { status: 200, type: TEXT, body };
}

export function json(value: unknown): Reply {
  return { status: 200, type: JSON_TYPE, body: JSON.stringify(value) };
}

/** Listing bodies carry no trailing newline, as EC2 and Nova send them. */
export function listing(entries: string[]): Reply {
  return text(entries.join('\n'));
}

/** 204 and 304 carry no body and so no content type. */
export function empty(status: 204 | 304): Reply {
  return { status, type: '', body: '' };
}

/** Fixed bodies only: an error must never echo the path, a header or an address back to the guest. */
export function failure(status: number, headers?: Record<string, string>): Reply {
  const reason: Record<number, string> = {
    400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
    405: 'Method Not Allowed', 409: 'Conflict', 413: 'Payload Too Large', 500: 'Internal Server Error',
  };
  return { status, type: TEXT, body: reason[status] ?? 'Error', headers };
}
