/**
 * QMP traffic logging. The wire log is what an operator reads when a VM misbehaves, so every line
 * in and out goes to `debug`; anomalies (unknown ids, listener crashes) go to `warn`.
 * The interface is the subset of pino's Logger that is used, so the agent's logger plugs in as is.
 */
export interface QmpLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const silentLogger: QmpLogger = { debug() {}, warn() {} };

/** query-qmp-schema answers with ~150 KB on one line; a log full of that hides everything else. */
const MAX_LOGGED_CHARS = 2000;

export function clip(line: string): string {
  return line.length <= MAX_LOGGED_CHARS ? line : `${line.slice(0, MAX_LOGGED_CHARS)}… (${line.length} chars)`;
}

/**
 * Secrets reach QEMU through object-add (`secret` objects carry the key in `data`) and a few
 * `password` arguments; the wire log must not keep them.
 */
export function redactArgs(command: string, args: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!args) return args;
  let out = args;
  if (command === 'object-add' && args['qom-type'] === 'secret' && 'data' in args) out = { ...out, data: '<redacted>' };
  if ('password' in args) out = { ...out, password: '<redacted>' };
  return out;
}
