import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import pino, { type Logger } from 'pino';

/** JSON logs (pino) to a file when given, else to stderr so stdout stays for results. */
export function makeLogger(name: string, file?: string): Logger {
  const level = process.env.KUMO_LOG_LEVEL ?? 'info';
  if (file) mkdirSync(dirname(file), { recursive: true });
  const dest = file ? pino.destination({ dest: file, sync: true, mkdir: true }) : pino.destination(2);
  return pino({ name, level, base: { pid: process.pid } }, dest);
}
