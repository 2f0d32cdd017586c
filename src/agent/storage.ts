import { join } from 'node:path';
import type { Logger } from 'pino';
import type { LaunchSpec, VmSpec } from '../compute/driver.js';
import { AgentFrontend, type LocalNode } from './frontend.js';
import { ImageCache } from './images.js';

export interface AgentStorageOptions {
  /** The agent's data directory: the frontend in `frontend/`, image files in `images/`. */
  dataDir: string;
  controllerUrl: string;
  log: Logger;
  /** The storage node this process runs, if any: the frontend reaches it without a network hop. */
  localNode?: LocalNode;
}

/**
 * What a real (QEMU) host needs to turn the controller's spec into a launch: its volumes exported
 * by the agent's frontend over NBD, and the image's kernel files from the agent's image cache.
 */
export class AgentStorage {
  readonly images: ImageCache;
  readonly frontend: AgentFrontend;
  private token: () => string = () => '';

  constructor(o: AgentStorageOptions) {
    this.images = new ImageCache({ dir: join(o.dataDir, 'images'), controllerUrl: o.controllerUrl, token: () => this.token() });
    this.frontend = new AgentFrontend({ dir: join(o.dataDir, 'frontend'), controllerUrl: o.controllerUrl, token: () => this.token(), log: o.log, localNode: o.localNode });
  }

  /** Called by the agent once registered: its node token authenticates both. */
  bindToken(token: () => string): void { this.token = token; }

  /** Opens the VM's volumes for `hostId` and resolves the boot files; a failure leaves nothing open. */
  async launch(hostId: string, spec: VmSpec): Promise<LaunchSpec> {
    await this.frontend.attach(hostId, spec.vmId, spec.disks.map((d) => d.volumeId));
    return this.resolve(spec);
  }

  /**
   * A live migration's destination: the volumes are exported before their leases come here (the
   * incoming QEMU does no I/O until it is resumed, after the hand-over), and the boot files resolved.
   */
  async launchIncoming(hostId: string, spec: VmSpec): Promise<LaunchSpec> {
    await this.frontend.prepare(hostId, spec.vmId, spec.disks.map((d) => ({ volumeId: d.volumeId, sizeBytes: d.sizeGiB * 1024 ** 3 })));
    return this.resolve(spec);
  }

  private async resolve(spec: VmSpec): Promise<LaunchSpec> {
    try {
      const disks = spec.disks.map((d) => ({ ...d, source: { kind: 'nbd' as const, socket: this.frontend.socket, export: d.volumeId } }));
      if (!spec.boot) return { ...spec, disks };
      const boot = spec.boot;
      const meta = await this.images.meta(boot.imageId);
      const file = async (name: string) => {
        const f = meta.files.find((x) => x.name === name);
        if (!f) throw new Error(`image ${boot.imageId} has no file ${name}`);
        return this.images.ensure(boot.imageId, f);
      };
      return {
        ...spec, disks,
        kernel: { path: await file(boot.kernel), ...(boot.initrd ? { initrd: await file(boot.initrd) } : {}), append: boot.append ?? '' },
      };
    } catch (e) {
      await this.frontend.detach(spec.vmId);
      throw e;
    }
  }
}
