/**
 * What a session keeps per storage node: its requests in flight (removeLocation waits for them to
 * end) and the blocks written through each connection since that connection's last FLUSH. Dirty
 * blocks are kept per connection because a node's FLUSH covers only what its own connection
 * wrote: after a reconnect, the old connection's writes can no longer be flushed, and its FLUSH
 * fails, which marks those replicas out-of-sync instead of pretending they are durable.
 */
import type { NodeClient } from '../node/node-client.js';
import type { BlockState } from './block-state.js';

export class NodeSlot {
  inflight = 0;
  readonly dirty = new Map<NodeClient, Set<BlockState>>();
  /** When a failure on this node was last logged (failures come in bursts). */
  warnedAt = 0;
  private lastClient: NodeClient | null = null;
  private lastSet: Set<BlockState> | null = null;
  private idleWaiters: (() => void)[] | null = null;

  constructor(readonly nodeId: string) {}

  markDirty(c: NodeClient, st: BlockState): void {
    if (c !== this.lastClient) {
      let s = this.dirty.get(c);
      if (!s) this.dirty.set(c, (s = new Set()));
      this.lastClient = c;
      this.lastSet = s;
    }
    this.lastSet!.add(st);
  }

  /** Hands the dirty sets over (to a flush) and starts new ones. */
  takeDirty(): [NodeClient, Set<BlockState>][] {
    const out = [...this.dirty];
    this.dirty.clear();
    this.lastClient = this.lastSet = null;
    return out;
  }

  end(): void {
    if (--this.inflight === 0 && this.idleWaiters) {
      const ws = this.idleWaiters;
      this.idleWaiters = null;
      for (const w of ws) w();
    }
  }

  /** Resolves once no request to the node is in flight. */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((r) => (this.idleWaiters ??= []).push(r));
  }
}
