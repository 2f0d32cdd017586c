/**
 * A hyperconverged host end to end, as `kumo up` runs one: `kumo agent --driver qemu
 * --storage-data DIR` runs the storage node in the agent's own process, and the agent's frontend
 * reaches it without a network hop. A tiny guest boots from a kumo volume on that node and runs
 * kumo-counter (every number on its console is a write the guest fsynced and the frontend
 * acknowledged). The agent — and with it the storage node — is stopped (SIGTERM) and killed
 * (SIGKILL) and restarted under the running guest: QEMU reconnects to the agent's NBD socket, the
 * node comes back as itself, and the guest's writes go on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../api/support.js';
import { QemuCloud, SMALL_DISK_TYPE, say } from './support.js';

const cloud = new QemuCloud('kumo-e2e-hc-', true);
const COUNTER_IMAGE = 'tiny-counter';


describe('a hyperconverged host: the storage node inside the QEMU agent', { timeout: 900_000 }, () => {
  before(async () => {
    say(`starting a controller and a QEMU agent running the storage node in ${cloud.data}`);
    await cloud.start({ variants: { [COUNTER_IMAGE]: 'kumo.counter=1 kumo.counter_ms=300' } });
  });

  after(async () => {
    await cloud.destroy(process.env.KUMO_TEST_KEEP === '1');
    assert.deepEqual(cloud.qemuPids(), []);
  });

  it('a guest writes to a volume on the agent\'s own node, and goes on writing across agent restarts (SIGTERM, SIGKILL)', { timeout: 600_000 }, async () => {
    const nodes = await cloud.storageNodes();
    assert.deepEqual(nodes.map((n) => [n.name, n.status]), [[cloud.mainStorage, 'up']], 'one storage node: the agent\'s');
    assert.match(cloud.agent!.out, new RegExp(`storage node ${cloud.mainStorage} \\(${nodes[0].nodeId}\\) runs in this process`));

    const vm = await cloud.allocate(SMALL_DISK_TYPE, 'hc-writer');
    const vol = await cloud.systemVolume(vm);
    assert.deepEqual((await cloud.locations(vol)).map((l) => l.nodeId), [nodes[0].nodeId]);
    await cloud.run(vm, 'restore-image', { imageId: cloud.variants.get(COUNTER_IMAGE) });
    await cloud.run(vm, 'power-on');
    assert.equal(await cloud.waitBoot(vm, 1), 1);
    let n = await cloud.counterPast(vm, 5);
    say(`${vm} counts (${n}) on ${vol}`);

    const pid = cloud.qemuPid(vm);
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      const at = await cloud.counter(vm); // the console is read through the agent
      await cloud.stopAgent(sig);
      say(`agent (and its storage node) stopped by ${sig} at counter ${at}`);
      await cloud.startAgent();
      await waitFor('the agent\'s storage node to be up again', async () => {
        const x = (await cloud.storageNodes()).find((y) => y.name === cloud.mainStorage);
        return x && x.status === 'up' && x.nodeId === nodes[0].nodeId ? x : null;
      }, 30_000, 200);
      n = await cloud.counterPast(vm, Math.max(at, n) + 5);
      say(`${vm} counts on after the ${sig} restart: ${n}`);
      assert.equal(cloud.qemuPid(vm), pid, 'the same QEMU all along');
    }
    const ls = await cloud.locations(vol);
    assert.deepEqual(ls.map((l) => [l.outOfSync, l.syncing]), [[0, 0]]);
    assert.equal((await cloud.run(vm, 'power-off', { force: true })).status, 'succeeded');
  });
});
