import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeResolver, type LocalResolver } from '../../src/agent/volumes.js';
import type { LaunchSpec } from '../../src/compute/driver.js';
import { SimDriver } from '../../src/compute/sim/driver.js';
import type { Services } from '../../src/services/index.js';
import type { Principal } from '../../src/services/principal.js';
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
 * The in-process cloud with an image store in a temp data dir, and an agent (sim driver) that
 * keeps volume files and an image cache in its own temp data dir and heartbeats every 200 ms.
 */
export class ImageCloud extends InProcessCloud {
  readonly dir: string;
  readonly controllerData: string;
  readonly agentData: string;
  readonly driver: RecordingSim;
  resolver!: LocalResolver;

  constructor(s: Services) {
    const dir = mkdtempSync(join(tmpdir(), 'kumo-images-'));
    const agentData = join(dir, 'agent');
    const driver = new RecordingSim({ bootMs: 20, shutdownMs: 20 });
    super(s, {
      driver, heartbeatMs: 200,
      resolver: (controllerUrl) => (this.resolver = makeResolver({ dataDir: agentData, controllerUrl })),
    });
    this.dir = dir;
    this.agentData = agentData;
    this.driver = driver;
    this.controllerData = join(dir, 'controller');
  }

  override async start(hostName = 'local-1', zone = 'zone-i'): Promise<void> {
    this.s.images.setDataDir(this.controllerData);
    await super.start(hostName, zone);
  }

  volumeFile(volumeId: string): string { return join(this.agentData, 'volumes', `${volumeId}.raw`); }

  override finish(p: Principal, requestId: string, seconds = 30) { return super.finish(p, requestId, seconds); }

  override async stop(): Promise<void> {
    await super.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
