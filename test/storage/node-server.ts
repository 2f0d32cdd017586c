import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { StorageNodeServer, type StorageNodeServerOptions } from '../../src/storage/node/index.js';

export const TOKEN = 'node-token-for-tests';

/** A storage node on 127.0.0.1 in a temp dir, stopped and removed when the test ends. */
export async function node(t: TestContext, opts: Partial<StorageNodeServerOptions> = {}): Promise<StorageNodeServer> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-snode-'));
  const srv = new StorageNodeServer({ dir, token: TOKEN, host: '127.0.0.1', port: 0, ...opts });
  await srv.start();
  t.after(async () => {
    await srv.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return srv;
}
