import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Fault, KumoError, faultName } from '../core/errors.js';

/** Turns anything thrown below a transport into a contract fault. Unexpected errors are logged
 * with a reference and reach the client as INTERNAL with that reference, never a stack trace. */
export function toFault(e: unknown, log: Logger, context: Record<string, unknown>): KumoError {
  if (e instanceof KumoError) return e;
  const ref = `ref-${randomBytes(4).toString('hex')}`;
  log.error({ ...context, ref, err: (e as Error)?.message, stack: (e as Error)?.stack }, 'internal error');
  return new KumoError(Fault.INTERNAL, `internal error; the controller log names it ${ref}`);
}

const HTTP_STATUS: Record<number, number> = {
  [Fault.AUTHORIZATION]: 403, [Fault.NOT_FOUND]: 404, [Fault.INVALID_STATE]: 409, [Fault.INVALID_PARAMS]: 400,
  [Fault.QUOTA_EXCEEDED]: 403, [Fault.NO_CAPACITY]: 503, [Fault.CONFLICT]: 409,
  [Fault.PARSE_ERROR]: 400, [Fault.INVALID_REQUEST]: 400, [Fault.METHOD_NOT_FOUND]: 404, [Fault.INTERNAL]: 500,
};

export const httpStatus = (code: number) => HTTP_STATUS[code] ?? 500;

/** RFC 9457 problem details, carrying the same fault code the XML-RPC face uses. */
export const problem = (e: KumoError) => ({
  type: `https://kumo.invalid/faults/${faultName(e.code)}`, title: faultName(e.code), status: httpStatus(e.code), detail: e.message, code: e.code,
});
