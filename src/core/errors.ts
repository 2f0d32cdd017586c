/** Fault codes of the HaaS contract (shared/haas-api.md). REST maps them to HTTP statuses. */
export const Fault = {
  AUTHORIZATION: 2,
  NOT_FOUND: 3,
  INVALID_STATE: 4,
  INVALID_PARAMS: 5,
  QUOTA_EXCEEDED: 6,
  NO_CAPACITY: 7,
  CONFLICT: 8,
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INTERNAL: -32603,
} as const;

export type FaultCode = (typeof Fault)[keyof typeof Fault];

export const faultName = (code: number): string =>
  (Object.entries(Fault).find(([, v]) => v === code)?.[0] ?? 'UNKNOWN');

/** An error a client is meant to see: it carries a contract fault code and a readable message. */
export class KumoError extends Error {
  constructor(readonly code: FaultCode, message: string) {
    super(message);
    this.name = 'KumoError';
  }
}

export const notFound = (what: string, id: string) => new KumoError(Fault.NOT_FOUND, `${what} ${id} not found`);
export const invalidParams = (msg: string) => new KumoError(Fault.INVALID_PARAMS, msg);
export const invalidState = (msg: string) => new KumoError(Fault.INVALID_STATE, msg);
/** Methods whose machinery arrives with a later issue fail this way, never with a fake success. */
export const notAvailableYet = (missing: string) => new KumoError(Fault.INVALID_STATE, `not available yet: ${missing}`);
