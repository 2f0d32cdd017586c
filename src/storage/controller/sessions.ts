import type { Logger } from 'pino';
import type { Services } from '../../services/index.js';
import { LocalMapSource } from '../../services/local-map.js';
import { NodePool } from '../frontend/pool.js';
import { VolumeSession } from '../frontend/session.js';

/**
 * The controller's own frontend: it opens a volume (taking its write lease as `controller:<name>`)
 * when no VM holds it — to write an image onto it, to relocate or resync a stopped volume — and
 * reaches storage nodes for garbage collection, all through one pool of node connections.
 */
export class ControllerStorage {
  readonly pool: NodePool;
  readonly holder: string;

  constructor(private readonly s: Services, name: string, private readonly log: Logger) {
    this.pool = new NodePool({ client: `controller:${name}`, log });
    this.holder = `controller:${name}`;
  }

  /** Runs `fn` on the volume opened here, then flushes and gives the lease back whatever happens. */
  async withSession<T>(volumeId: string, fn: (session: VolumeSession) => Promise<T>): Promise<T> {
    const map = new LocalMapSource(this.s.blockMaps, this.holder);
    const session = await VolumeSession.open({ map, volumeId, pool: this.pool, log: this.log });
    try {
      return await fn(session);
    } finally {
      await session.close().catch((e: Error) => this.log.warn({ volumeId, err: e.message }, 'closing a volume failed; its lease lapses by itself'));
    }
  }

  async close(): Promise<void> { await this.pool.close(); }
}
