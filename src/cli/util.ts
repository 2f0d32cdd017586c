import { InvalidArgumentError } from 'commander';

export function int(v: string): number {
  if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError('not an integer');
  return Number(v);
}

export function hostPort(v: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(v);
  if (!m) throw new InvalidArgumentError(`expected HOST:PORT, got ${v}`);
  return { host: m[1], port: Number(m[2]) };
}

/** Runs `stop` once on SIGINT/SIGTERM, then exits. */
export function onSignals(stop: () => Promise<unknown>): void {
  let stopping = false;
  const handler = () => {
    if (stopping) return;
    stopping = true;
    stop().catch((e) => process.stderr.write(`error while stopping: ${(e as Error).message}\n`)).finally(() => process.exit(0));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
