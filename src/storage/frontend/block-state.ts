/**
 * The session's live copy of one allocated block. Replica states change here first (a failed
 * write makes a replica out-of-sync at once, so later writes skip it) and reach the map after;
 * `durable` is the state the map last committed, so a write can tell whether the map still claims
 * more than is true (a replica in-sync there that missed a write here) and must wait for a commit.
 */
import type { Replica, ReplicaState } from '../blockmap/replicas.js';
import { BlockLock } from './lock.js';
import type { BlockEntry } from './map.js';

export interface LiveReplica {
  readonly nodeId: string;
  state: ReplicaState;
  /** The state the map holds, as far as this session knows. */
  durable: ReplicaState;
  /** Being removed (removeLocation): neither reads nor writes go there until it is gone or restored. */
  detached: boolean;
  /** A write skipped it while detached: if the removal is refused, it is out-of-sync. */
  missed: boolean;
}

export class BlockState {
  readonly lock = new BlockLock();
  /** Discarded: its entry is gone; a writer that waited on the lock allocates again. */
  gone = false;
  readonly replicas: LiveReplica[];

  constructor(readonly block: number, readonly objectId: string, replicas: readonly Replica[]) {
    this.replicas = replicas.map((r) => ({ nodeId: r.nodeId, state: r.state, durable: r.state, detached: false, missed: false }));
  }

  static of(e: BlockEntry): BlockState {
    return new BlockState(e.block, e.objectId, e.replicas);
  }

  replica(nodeId: string): LiveReplica | undefined {
    for (const r of this.replicas) if (r.nodeId === nodeId) return r;
    return undefined;
  }

  /** The map would let a reader see stale data: a replica it holds in-sync has missed a write. */
  get mapAhead(): boolean {
    for (const r of this.replicas) if (r.durable === 'in-sync' && r.state !== 'in-sync') return true;
    return false;
  }

  /** Replicas reads may use. */
  readable(): LiveReplica[] {
    return this.replicas.filter((r) => r.state === 'in-sync' && !r.detached);
  }
}

/** A replica writes go to. */
export const isWriteTarget = (r: LiveReplica): boolean => r.state !== 'out-of-sync' && !r.detached;
