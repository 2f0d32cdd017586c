import type { ColumnType, Generated, Selectable } from 'kysely';

/**
 * Row types of the state store. Times are ISO-8601 UTC strings (the same text in SQLite and
 * PostgreSQL, and they sort lexically); booleans are 0/1 integers; JSON documents are text.
 */
/** Columns added by later migrations are optional when inserting (they have defaults or are nullable). */
type Defaulted<T> = ColumnType<T, T | undefined, T>;

export interface ZoneRow {
  id: string; name: string; created_at: string;
  /** The zone's SDN gateway (DESIGN.md §7): its VXLAN (underlay) address and its port toward the
   * zone's edges/core; both null while no gateway is registered. */
  gateway_underlay_ip: string | null; gateway_downlink: string | null;
  /** 1 for the one gateway zone (a partial unique index keeps it to one), else 0. */
  gateway_zone: number;
}
export type ZoneTable = Omit<ZoneRow, 'gateway_underlay_ip' | 'gateway_downlink' | 'gateway_zone'> & {
  gateway_underlay_ip: Defaulted<string | null>; gateway_downlink: Defaulted<string | null>; gateway_zone: Defaulted<number>;
};

export interface HostRow {
  id: string; zone_id: string; name: string;
  vcpus: number; memory_mib: number;
  pool: 'shared' | 'dedicated'; dedicated_tenant: string | null;
  maintenance: number; architectures: string;
  driver: string; accel: string;
  agent_url: string; node_token: string;
  status: 'up' | 'down'; last_seen: string; created_at: string;
  /** The edge switch the host hangs off and the edge's port to it; null until wired (setHostEdge). */
  edge_id: string | null; edge_port: string | null;
  /** The host's own interface to its edge, the trunk of its bridge ('eth0' unless set). */
  uplink: string;
}
export type HostTable = Omit<HostRow, 'edge_id' | 'edge_port' | 'uplink'> & {
  edge_id: Defaulted<string | null>; edge_port: Defaulted<string | null>; uplink: Defaulted<string>;
};

/** An edge (top-of-rack) switch of a zone; its MAC table holds at most mac_budget VM NICs. */
export interface EdgeRow { id: string; zone_id: string; name: string; uplink: string; mac_budget: number; created_at: string }

export interface TenantRow { id: string; name: string; quota: string; created_at: string }

export interface ApiUserRow { id: string; name: string; tenant_id: string; key_hash: string; admin: number; created_at: string }

export interface VmTypeRow { name: string; vcpus: number; memory_mib: number; system_disk_gib: number; resource_type: string }

export interface VmRow {
  id: string; tenant_id: string; name: string; type: string;
  architecture: string; resource_type: string; vcpus: number; memory_mib: number;
  status: string; power: string; zone_id: string | null; host_id: string | null;
  /** The host the VM ran on last; kept after it stops, for its console output. */
  last_host_id?: string | null;
  /** The destination while a live migration runs: the VM holds capacity there too. */
  migration_host_id?: string | null;
  created_at: string; updated_at: string;
}

export interface VmDiskRow { vm_id: string; slot: number; volume_id: string }
export interface VmNicRow { vm_id: string; slot: number; network_id: string; mac: string }
export interface NicAddressRow { vm_id: string; slot: number; network_id: string; ip: string }

export interface NetworkRow {
  id: string; tenant_id: string | null; name: string; kind: 'private' | 'shared';
  cidr: string; gateway: string; vni: number | null; created_at: string;
}
export interface NetworkZoneVlanRow { network_id: string; zone_id: string; vlan: number }
export interface IpAllocationRow { network_id: string; ip: string; tenant_id: string; created_at: string }

export interface VolumeRow {
  id: string; tenant_id: string; name: string; size_gib: number;
  class: 'best-effort' | 'guaranteed'; iops: number; replicas: number;
  zone_id: string | null; encrypted: number; system: number; created_at: string;
  /** The image last restored onto the volume; null while it is blank. */
  image_id: string | null;
  /** Bytes per block of the volume's block map (DESIGN.md §6): 4 MiB unless chosen otherwise. */
  block_size: number;
}

export type VolumeTable = Omit<VolumeRow, 'image_id' | 'block_size'> & { image_id: Defaulted<string | null>; block_size: Defaulted<number> };

export interface ImageRow {
  id: string; tenant_id: string | null; name: string; os: string; size_gib: number;
  kind: string; source: string; created_at: string;
  /** Where the image's files are, relative to the controller's data dir ('' = no files). */
  dir: string;
  /** JSON {kernel, initrd?, append?} naming files of the image for direct kernel boot, or '' for
   * firmware (BIOS) boot from the disk. */
  boot: string;
  /** Bytes of the raw disk (PostgreSQL bigint arrives as text: read it with Number()). */
  size_bytes: number | string;
  /** sha256 of the raw disk. */
  sha256: string;
  /** JSON [{name, size, sha256}] of every file of the image, the disk first. */
  files: string;
}
export type ImageTable = Omit<ImageRow, 'dir' | 'boot' | 'size_bytes' | 'sha256' | 'files'> & {
  dir: Defaulted<string>; boot: Defaulted<string>; size_bytes: ColumnType<number | string, number | undefined, number>;
  sha256: Defaulted<string>; files: Defaulted<string>;
};

export interface StorageNodeRow {
  id: string; zone_id: string; name: string; status: 'up' | 'down'; created_at: string;
  /** Where frontends and other nodes reach its block protocol ('' and 0 until it registers). */
  host: string; port: number;
  /** What the node and its clients present on the block protocol; null for a node never registered. */
  node_token: string | null;
  /** Space of its data filesystem as last reported (PostgreSQL bigint arrives as text: read with Number()). */
  total_bytes: number | string; free_bytes: number | string;
  last_seen: string;
}
export type StorageNodeTable = Omit<StorageNodeRow, 'host' | 'port' | 'node_token' | 'total_bytes' | 'free_bytes' | 'last_seen'> & {
  host: Defaulted<string>; port: Defaulted<number>; node_token: Defaulted<string | null>;
  total_bytes: ColumnType<number | string, number | undefined, number>; free_bytes: ColumnType<number | string, number | undefined, number>;
  last_seen: Defaulted<string>;
};

/** A node every block of the volume has (or is getting) a copy on. */
export interface VolumeLocationRow { volume_id: string; node_id: string; added_at: string }
/** An allocated block and the object holding its bytes; a block without a row reads as zeros. */
export interface VolumeBlockRow { volume_id: string; block: number; object_id: string }
export interface ObjectReplicaRow { object_id: string; node_id: string; state: 'in-sync' | 'syncing' | 'out-of-sync' }
/** The volume's write lease; holder '' once released. The row stays so epochs keep growing (fencing). */
export interface VolumeLeaseRow { volume_id: string; holder: string; epoch: number; expires_at: string }
/** An object a node is to delete (its block was discarded, its location removed, its volume deleted). */
export interface StorageGarbageRow { node_id: string; object_id: string; created_at: string }

export interface RequestRow {
  seq: Generated<number>;
  id: string; tenant_id: string; method: string; resource_id: string; params: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  progress: number; message: string; result: string;
  error_code: number | null; error_message: string;
  owner: string | null; lease_expires: string | null; attempts: number; checkpoint: string;
  /** 1 once cancelRequest asked a running request to roll back; its runner polls it. */
  cancel_requested: Defaulted<number>;
  created_at: string; started_at: string | null; finished_at: string | null;
}

/** One row per resource with a running request: the primary key is what makes claims exclusive. */
export interface ResourceLockRow { resource_id: string; request_id: string; owner: string; expires_at: string }

export interface CommentRow { resource_id: string; comment: string }

export interface EventRow { seq: Generated<number>; tenant_id: string | null; kind: string; resource_id: string; data: string; at: string }

export interface SettingRow { key: string; value: string }

/** One change of a VM's guest configuration by an init method (`kind`), in order of `generation`.
 * `payload` is the method's JSON with passwords already crypt-hashed. 'stored': kept for the next
 * boot of a stopped VM; 'applied': the guest confirmed it. */
export interface VmConfigGenerationRow {
  vm_id: string; generation: number; created_at: string; kind: string; payload: string;
  status: 'pending' | 'applied' | 'stored'; request_id: string;
}
/** The newest generation of each VM's guest configuration (what the guest is to converge to). */
export interface VmConfigCurrentRow { vm_id: string; generation: number; updated_at: string }
/** user-data as given at allocateVm, base64 (the bytes are the tenant's: a script, #cloud-config, anything). */
export interface VmUserDataRow { vm_id: string; data: string }

export interface Schema {
  zones: ZoneTable; hosts: HostTable; edges: EdgeRow; tenants: TenantRow; api_users: ApiUserRow; vm_types: VmTypeRow;
  vms: VmRow; vm_disks: VmDiskRow; vm_nics: VmNicRow; nic_addresses: NicAddressRow;
  networks: NetworkRow; network_zone_vlans: NetworkZoneVlanRow; ip_allocations: IpAllocationRow;
  volumes: VolumeTable; images: ImageTable; storage_nodes: StorageNodeTable;
  volume_locations: VolumeLocationRow; volume_blocks: VolumeBlockRow; object_replicas: ObjectReplicaRow;
  volume_leases: VolumeLeaseRow; storage_garbage: StorageGarbageRow;
  requests: RequestRow; resource_locks: ResourceLockRow; comments: CommentRow; events: EventRow;
  settings: SettingRow; vm_config_generations: VmConfigGenerationRow; vm_config_current: VmConfigCurrentRow;
  vm_user_data: VmUserDataRow;
}

export type Request = Selectable<RequestRow>;
