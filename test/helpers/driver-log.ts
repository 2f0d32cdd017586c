import type { DriverLog } from '../../src/compute/qemu/driver.js';

/** A QEMU driver's log for tests: errors always, everything with KUMO_TEST_LOG=1, each line tagged. */
export function testLog(tag: string): DriverLog {
  const verbose = process.env.KUMO_TEST_LOG === '1';
  const out = (level: string) => (obj: object, msg: string) => {
    if (verbose || level === 'error') console.log(`${tag} ${level} ${msg} ${JSON.stringify(obj)}`);
  };
  return { debug: verbose ? out('debug') : () => undefined, info: out('info'), warn: out('warn'), error: out('error') };
}
