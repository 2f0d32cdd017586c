/**
 * Storage node logging: the subset of pino's Logger that is used, so the CLI's logger plugs in.
 * Per-request traffic is never logged (a busy node serves 100k requests/s); connections,
 * authentication failures, protocol errors and I/O errors are.
 */
export interface NodeLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export const silentLogger: NodeLogger = { debug() {}, info() {}, warn() {} };
