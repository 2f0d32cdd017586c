/**
 * Typed wrappers for the QMP commands the QEMU driver uses. They add types and the few bits of
 * meaning a caller should not have to remember (quit's reply may be lost to the exit, capability
 * lists are easier to write as a record); everything else is passed to QEMU unchanged.
 */
import { QmpClosed } from './errors.js';
import type { ExecuteOptions, QmpExecutor } from './monitor.js';
import type {
  AnnounceParameters, BlockInfo, BlockdevOptions, CalcDirtyRateArgs, CpuInfoFast, DeviceAddArgs,
  DirtyRateInfo, MigrationCapability, MigrationInfo, MigrationParameters, ObjectAddArgs, StatusInfo,
  VersionInfo,
} from './types.js';

type Empty = Record<string, never>;

export class QmpCommands {
  constructor(private readonly qmp: QmpExecutor) {}

  // --- run state ---

  queryStatus(opts?: ExecuteOptions): Promise<StatusInfo> {
    return this.qmp.execute<StatusInfo>('query-status', undefined, opts);
  }

  queryVersion(opts?: ExecuteOptions): Promise<VersionInfo> {
    return this.qmp.execute<VersionInfo>('query-version', undefined, opts);
  }

  /** Presses the ACPI power button; the guest decides whether and when to shut down. */
  async systemPowerdown(opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('system_powerdown', undefined, opts);
  }

  /** Hard reset. Under `-no-reboot` QEMU turns it into a SHUTDOWN and exits. */
  async systemReset(opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('system_reset', undefined, opts);
  }

  /**
   * Ends QEMU. QEMU 7.2 sends SHUTDOWN, then the reply, then closes; a connection lost before the
   * reply still means the request went out, so QmpClosed counts as done.
   */
  async quit(opts?: ExecuteOptions): Promise<void> {
    try {
      await this.qmp.execute<Empty>('quit', undefined, opts);
    } catch (err) {
      if (!(err instanceof QmpClosed)) throw err;
    }
  }

  /** Pauses the vCPUs (STOP event); also the state a migration destination is resumed from. */
  async stop(opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('stop', undefined, opts);
  }

  async cont(opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('cont', undefined, opts);
  }

  queryCpusFast(opts?: ExecuteOptions): Promise<CpuInfoFast[]> {
    return this.qmp.execute<CpuInfoFast[]>('query-cpus-fast', undefined, opts);
  }

  queryBlock(opts?: ExecuteOptions): Promise<BlockInfo[]> {
    return this.qmp.execute<BlockInfo[]>('query-block', undefined, opts);
  }

  /** For what QMP lacks; the output is text for humans and may change between QEMU versions. */
  humanMonitorCommand(commandLine: string, opts?: ExecuteOptions & { cpuIndex?: number }): Promise<string> {
    const args: Record<string, unknown> = { 'command-line': commandLine };
    if (opts?.cpuIndex !== undefined) args['cpu-index'] = opts.cpuIndex;
    return this.qmp.execute<string>('human-monitor-command', args, opts);
  }

  // --- migration ---

  /** `{ events: true, 'auto-converge': true }` → QEMU's list of {capability, state}. */
  async migrateSetCapabilities(caps: Partial<Record<MigrationCapability, boolean>>, opts?: ExecuteOptions): Promise<void> {
    const capabilities = Object.entries(caps).map(([capability, state]) => ({ capability, state }));
    await this.qmp.execute<Empty>('migrate-set-capabilities', { capabilities }, opts);
  }

  async migrateSetParameters(params: MigrationParameters, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('migrate-set-parameters', params, opts);
  }

  queryMigrateParameters(opts?: ExecuteOptions): Promise<MigrationParameters> {
    return this.qmp.execute<MigrationParameters>('query-migrate-parameters', undefined, opts);
  }

  /**
   * Starts an outgoing migration and returns at once; progress comes from query-migrate or the
   * MIGRATION events. (`blk`/`inc` block migration is deprecated: kumo's disks are shared NBD.)
   */
  async migrate(uri: string, opts?: ExecuteOptions & { resume?: boolean }): Promise<void> {
    const args: Record<string, unknown> = { uri };
    if (opts?.resume !== undefined) args.resume = opts.resume;
    await this.qmp.execute<Empty>('migrate', args, opts);
  }

  /** Only on a QEMU started with `-incoming defer`, so capabilities can be set before listening. */
  async migrateIncoming(uri: string, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('migrate-incoming', { uri }, opts);
  }

  queryMigrate(opts?: ExecuteOptions): Promise<MigrationInfo> {
    return this.qmp.execute<MigrationInfo>('query-migrate', undefined, opts);
  }

  async migrateCancel(opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('migrate_cancel', undefined, opts);
  }

  /** Starts a measurement lasting `calc-time` seconds; read it with queryDirtyRate afterwards. */
  async calcDirtyRate(args: CalcDirtyRateArgs, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('calc-dirty-rate', { ...args }, opts);
  }

  queryDirtyRate(opts?: ExecuteOptions): Promise<DirtyRateInfo> {
    return this.qmp.execute<DirtyRateInfo>('query-dirty-rate', undefined, opts);
  }

  /** Gratuitous ARP/RARP from the guest's NICs so switches learn where the VM now lives. */
  async announceSelf(params: AnnounceParameters, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('announce-self', { ...params }, opts);
  }

  // --- hotplug ---

  /** QEMU's main loop blocks while the driver opens its backend (an NBD connect): allow time. */
  async blockdevAdd(options: BlockdevOptions, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('blockdev-add', options, opts);
  }

  async blockdevDel(nodeName: string, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('blockdev-del', { 'node-name': nodeName }, opts);
  }

  async deviceAdd(args: DeviceAddArgs, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('device_add', args, opts);
  }

  /**
   * Only asks for removal: a guest-visible device is gone once DEVICE_DELETED arrives, which
   * needs the guest's cooperation (PCI hot-unplug). Listen for the event before calling this.
   */
  async deviceDel(id: string, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('device_del', { id }, opts);
  }

  async objectAdd(args: ObjectAddArgs, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('object-add', args, opts);
  }

  async objectDel(id: string, opts?: ExecuteOptions): Promise<void> {
    await this.qmp.execute<Empty>('object-del', { id }, opts);
  }
}
