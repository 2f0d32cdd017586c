import type { Services } from '../../src/services/index.js';
import type { StorageRegisterBody } from '../../src/storage/wire.js';

export const GiB = 1024 ** 3;

/** Registers a storage node as `kumo storage-node` would (nothing listens at its address). */
export async function registerNode(s: Services, name: string, zone = 'zone-a', more: Partial<StorageRegisterBody> = {}): Promise<{ nodeId: string; nodeToken: string }> {
  return s.storageNodes.register(await s.hosts.joinToken(), {
    name, zone, host: '127.0.0.1', port: 10809, totalBytes: 100 * GiB, freeBytes: 80 * GiB, ...more,
  });
}

/** A clock tests move by hand, for lease expiry without sleeping. */
export class Clock {
  t = Date.parse('2030-01-01T00:00:00Z');
  readonly now = () => this.t;
  advance(ms: number): void { this.t += ms; }
}
