import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AgentStorage } from '../../src/agent/storage.js';
import type { LaunchSpec } from '../../src/compute/driver.js';
import { SimDriver } from '../../src/compute/sim/driver.js';
import type { Services } from '../../src/services/index.js';
import type { Principal } from '../../src/services/principal.js';
import { StorageNodeServer } from '../../src/storage/node/index.js';
import { silent } from '../helpers/db.js';
import { InProcessCloud } from '../services/fixtures.js';

export const run = promisify(execFile);

/** A sim driver that remembers the LaunchSpec of each start, to check what the agent resolved. */
export class RecordingSim extends SimDriver {
  readonly launched = new Map<string, LaunchSpec>();
  override async start(spec: LaunchSpec): Promise<void> {
    this.launched.set(spec.vmId, spec);
    return super.start(spec);
  }
}

/** A raw file of `mib` MiB: every MiB filled with its own byte (`seed + i`), the last one left zero. */
export function rawImage(path: string, mib: number, seed: number): string {
  const buf = Buffer.alloc(mib * 1048576);
  for (let i = 0; i < mib - 1; i++) buf.fill((seed + i) & 0xff || 1, i * 1048576, (i + 1) * 1048576);
  writeFileSync(path, buf);
  return path;
}

/**
 * The in-process cloud with an image store in a temp data dir, a real storage node on 127.0.0.1
 * (registered like `kumo storage-node` would), and an agent (sim compute driver) with the real
 * volume frontend and image cache in its own temp data dir: a started VM's volumes are NBD exports
 * on the agent's socket, readable with qemu-img while it "runs".
 */
export class ImageCloud extends InProcessCloud {
  readonly dir: string;
  readonly controllerData: string;
  readonly agentData: string;
  readonly driver: RecordingSim;
  readonly nodeDir: string;
  node: StorageNodeServer | null = null;
  nodeId = '';
  agentStorage!: AgentStorage;

  constructor(s: Services) {
    const dir = mkdtempSync(join(tmpdir(), 'kumo-images-'));
    const agentData = join(dir, 'agent');
    const driver = new RecordingSim({ bootMs: 20, shutdownMs: 20 });
    super(s, {
      driver, heartbeatMs: 200,
      // A hyperconverged host: the storage node runs in the agent's process, its frontend reaches it in process.
      storage: (controllerUrl) => (this.agentStorage = new AgentStorage({
        dataDir: agentData, controllerUrl, log: silent, localNode: { nodeId: this.nodeId, server: this.node! },
      })),
    });
    this.dir = dir;
    this.agentData = agentData;
    this.driver = driver;
    this.controllerData = join(dir, 'controller');
    this.nodeDir = join(dir, 'storage');
  }

  override async start(hostName = 'local-1', zone = 'zone-i'): Promise<void> {
    this.s.images.setDataDir(this.controllerData);
    this.node = new StorageNodeServer({ dir: this.nodeDir, token: 'not-registered-yet', host: '127.0.0.1', port: 0 });
    const { port } = await this.node.start();
    const r = await this.s.storageNodes.register(await this.s.hosts.joinToken(), { name: 'store-1', zone, host: '127.0.0.1', port, totalBytes: 100 * 1024 ** 3, freeBytes: 50 * 1024 ** 3 });
    this.node.setToken(r.nodeToken);
    this.nodeId = r.nodeId;
    await super.start(hostName, zone);
  }

  override finish(p: Principal, requestId: string, seconds = 30) { return super.finish(p, requestId, seconds); }

  override async stop(): Promise<void> {
    await super.stop();
    await this.node?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
