/** The sim SDN driver keeps the linux driver's contract: read() gives back what was applied, a repeat changes nothing. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimSdnDriver } from '../../src/sdn/sim/driver.js';
import type { DeviceConfig, HostConfig } from '../../src/sdn/types.js';

const host: HostConfig = {
  hostId: 'h1', bridge: 'kbr0', uplink: 'eth1', trunk: [100, 200],
  ports: [{ port: 'kt0000000000a0', vlan: 100, mac: '02:00:00:00:00:0a', ips: ['192.0.2.10'] }, { port: 'kt0000000000b0', vlan: 200, mac: '02:00:00:00:00:0b', ips: [] }],
};

describe('sim SDN driver', () => {
  it('records configs per device, counts applies, and reports only real changes', async () => {
    const d = new SimSdnDriver();
    const first = await d.apply({ kind: 'host', config: host });
    assert.ok(first.changes > 0);
    assert.equal(first.counts.sim, first.changes);
    assert.deepEqual(await d.read('host', 'h1'), { kind: 'host', config: host });
    assert.equal(await d.read('host', 'h2'), null);
    assert.equal(await d.read('edge', 'h1'), null);

    assert.equal((await d.apply({ kind: 'host', config: structuredClone(host) })).changes, 0);

    const smaller: DeviceConfig = { kind: 'host', config: { ...host, trunk: [100], ports: [host.ports[0]] } };
    const r = await d.apply(smaller);
    assert.deepEqual(r.commands.sort(), ['- ports[]=' + JSON.stringify(host.ports[1]), '- trunk[]=200']);
    assert.equal(d.appliesTo('host', 'h1'), 3);
    assert.equal(d.applyCount, 3);

    // What read() returns is a copy: changing it does not change the record.
    const got = await d.read('host', 'h1');
    got!.config.trunk.push(999);
    assert.deepEqual((await d.read('host', 'h1'))!.config.trunk, [100]);

    await d.apply({ kind: 'edge', config: { edgeId: 'e1', bridge: 'kedge0', uplink: { port: 'up0', vlans: [100] }, downlinks: [] } });
    assert.deepEqual(d.devicesHeld(), ['edge/e1', 'host/h1']);
    assert.ok((await d.remove('host', 'h1')).changes > 0);
    assert.equal(await d.read('host', 'h1'), null);
    assert.equal((await d.remove('host', 'h1')).changes, 0);
  });
});
