import type { Logger } from 'pino';
import type { Db } from '../state/db.js';
import type { SchedulerPolicy } from '../scheduler/index.js';
import { BlockMaps } from './blockmaps.js';
import { Comments } from './comments.js';
import { Events } from './events.js';
import { Hosts } from './hosts.js';
import { Images } from './images.js';
import { Init } from './init.js';
import { Metrics } from './metrics.js';
import { Networks } from './networks.js';
import { Reconciler } from './reconcile.js';
import { Requests } from './requests.js';
import { Sdn } from './sdn.js';
import { StorageNodes } from './storage-nodes.js';
import { Tenants } from './tenants.js';
import { SdnTopology } from './topology.js';
import { VmTypes } from './vm-types.js';
import type { WriteWhitelist } from './write-whitelist.js';
import { Vms } from './vms.js';
import { Volumes } from './volumes.js';
import { Zones } from './zones.js';

/** The service layer: every business rule of kumo, behind which both APIs are thin. */
export class Services {
  readonly events: Events;
  readonly requests: Requests;
  readonly tenants: Tenants;
  readonly zones: Zones;
  readonly vmTypes: VmTypes;
  readonly vms: Vms;
  readonly networks: Networks;
  readonly volumes: Volumes;
  readonly images: Images;
  readonly init: Init;
  readonly comments: Comments;
  readonly hosts: Hosts;
  readonly topology: SdnTopology;
  readonly sdn: Sdn;
  readonly storageNodes: StorageNodes;
  readonly blockMaps: BlockMaps;
  readonly reconciler: Reconciler;
  readonly metrics: Metrics;

  constructor(readonly db: Db, readonly policy: SchedulerPolicy, log: Logger, opts: { writeWhitelist?: WriteWhitelist } = {}) {
    this.events = new Events(db);
    this.requests = new Requests(db, this.events);
    this.tenants = new Tenants(db);
    this.zones = new Zones(db);
    this.vmTypes = new VmTypes(db);
    this.blockMaps = new BlockMaps(db);
    this.vms = new Vms(db, this.events, this.requests, this.vmTypes, this.zones, policy, this.blockMaps);
    this.networks = new Networks(db, this.events, this.vms);
    this.volumes = new Volumes(db, this.events, this.vms, this.zones, this.blockMaps, this.requests);
    this.images = new Images(db);
    this.init = new Init(db, this.vms, this.requests, opts.writeWhitelist);
    this.comments = new Comments(db);
    this.hosts = new Hosts(db, this.events, this.zones);
    this.topology = new SdnTopology(db, this.events, this.zones, this.hosts);
    this.sdn = new Sdn(db);
    this.storageNodes = new StorageNodes(db, this.events, this.zones, this.hosts);
    this.reconciler = new Reconciler(db, this.events, log);
    this.metrics = new Metrics(db);
  }
}
