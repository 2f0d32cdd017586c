import type { Replica, ReplicaState } from '../blockmap/replicas.js';

/**
 * What a frontend (the NBD export of a volume) needs from the state store, behind one small
 * interface: the controller implements it in-process (LocalMapSource, for restores, relocations of
 * stopped volumes and `kumo up`), agents and `kumo vol export` over HTTP (HttpMapSource).
 *
 * The block map is authoritative in the state store (DESIGN.md §6). A frontend holds the volume's
 * write lease from open() to release(); every other call names the lease's epoch and fails with
 * LeaseLost once another holder took the lease, so a fenced frontend can never change the map.
 * Every call resolves only once its change is committed: callers rely on that to acknowledge writes.
 */

/** A storage node as frontends reach it. */
export interface NodeAddress { nodeId: string; zone: string; host: string; port: number; token: string }

/** One allocated block: its object and where the object's copies are. */
export interface BlockEntry { block: number; objectId: string; replicas: Replica[] }

export interface VolumeMap {
  volumeId: string;
  sizeBytes: number;
  blockSize: number;
  /** The write lease's epoch (fencing token); grows with every open(). */
  epoch: number;
  /** The lease lapses this long after the last open/renew; renew well before. */
  leaseMs: number;
  /** The volume's locations: the nodes every block has (or gets) a copy on. New blocks are placed on all of them. */
  locations: string[];
  /** Every node named in `locations` or in a replica. */
  nodes: NodeAddress[];
  /** Allocated blocks only; a block without an entry was never written and reads as zeros. */
  blocks: BlockEntry[];
}

/** One replica's new state; `null` removes the replica. */
export interface ReplicaChange { block: number; nodeId: string; state: ReplicaState | null }

export interface MapSource {
  /**
   * Takes the volume's write lease and returns its map. The same holder may open again (a restarted
   * agent): the epoch grows and the older session is fenced. Another holder's live lease → LeaseHeld.
   */
  open(volumeId: string): Promise<VolumeMap>;
  /** Extends the lease by leaseMs. */
  renew(volumeId: string, epoch: number): Promise<void>;
  /**
   * Allocates blocks on first write: each gets a fresh object with an in-sync replica on every
   * location. Idempotent: an already allocated block comes back as it is.
   */
  allocate(volumeId: string, epoch: number, blocks: number[]): Promise<BlockEntry[]>;
  /** Records replica state changes of allocated blocks (write failures, copies done). */
  update(volumeId: string, epoch: number, changes: ReplicaChange[]): Promise<void>;
  /** Unallocates blocks (whole-block trims, restores): they read as zeros; their objects become garbage. */
  discard(volumeId: string, epoch: number, blocks: number[]): Promise<void>;
  /**
   * Adds a location: every allocated block gets an out-of-sync replica there (the frontend then
   * copies them). Returns the node's address. A node already a location → INVALID_STATE.
   */
  addLocation(volumeId: string, epoch: number, nodeId: string): Promise<NodeAddress>;
  /**
   * Removes a location and its replicas; their objects become garbage on that node. Refused
   * (INVALID_STATE) when it would remove the last in-sync copy of any block.
   */
  removeLocation(volumeId: string, epoch: number, nodeId: string): Promise<void>;
  /** Gives the lease up. */
  release(volumeId: string, epoch: number): Promise<void>;
  /**
   * Live migration's switch-over: hands the live lease to `toHolder` in one step (the epoch grows,
   * this holder is fenced, no third holder can take it in between). The new holder then open()s.
   */
  handover(volumeId: string, epoch: number, toHolder: string): Promise<void>;
}

export class LeaseHeld extends Error {
  constructor(readonly volumeId: string, readonly holder: string) {
    super(`volume ${volumeId} is held by ${holder}`);
    this.name = 'LeaseHeld';
  }
}

export class LeaseLost extends Error {
  constructor(readonly volumeId: string, readonly epoch: number) {
    super(`the write lease of ${volumeId} (epoch ${epoch}) was taken over`);
    this.name = 'LeaseLost';
  }
}
