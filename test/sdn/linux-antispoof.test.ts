/**
 * The anti-spoofing rules alone, on a plain (not VLAN-aware) bridge made by the test, so they are
 * proven with real traffic even on kernels without bridge VLAN filtering: the given MAC and IP
 * pass, a forged MAC or IP and a kt* port without config do not, set changes are exact, and the
 * state read back from nft plans no change.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyNft, desiredElements, planNft, readNft } from '../../src/sdn/linux/antispoof.js';
import { run } from '../../src/sdn/netns.js';
import type { PortConfig } from '../../src/sdn/types.js';
import { Lab, sh, tcpHello } from './netns-helpers.js';

const nft = await run('nft', ['--version']).then(() => true, () => false);
const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : nft ? null : 'nft is missing (Debian package nftables)';

const A = 'kt0000000000a0';
const B = 'kt0000000000b0';
const E = 'kt0000000000e0';

describe('linux SDN anti-spoofing (nftables bridge table)', { skip: skip ?? false }, () => {
  it('lets a port send only from its MAC and IPs, and converges its sets exactly', async (t) => {
    const lab = new Lab();
    t.after(() => lab.cleanup());
    const h = await lab.ns('as');
    await sh(h, 'ip', 'link', 'add', 'kbr0', 'type', 'bridge');
    await sh(h, 'ip', 'link', 'set', 'kbr0', 'up');
    const va = await lab.endpoint('va', h, A, '02:00:00:00:00:0a', '192.0.2.10/24');
    const vb = await lab.endpoint('vb', h, B, '02:00:00:00:00:0b', '192.0.2.11/24');
    const ve = await lab.endpoint('ve', h, E, '02:00:00:00:00:0e', '192.0.2.14/24');
    for (const p of [A, B, E]) await sh(h, 'ip', 'link', 'set', p, 'master', 'kbr0', 'up');
    const ports: PortConfig[] = [
      { port: A, vlan: 100, mac: '02:00:00:00:00:0a', ips: ['192.0.2.10'] },
      { port: B, vlan: 100, mac: '02:00:00:00:00:0b', ips: ['192.0.2.11'] },
    ];
    const converge = async (ps: PortConfig[]) => {
      const plan = planNft(await readNft(h), desiredElements(ps));
      if (plan.script) await applyNft(h, plan.script);
      return plan.changes;
    };
    assert.equal((await converge(ports))[0], 'nft: (re)create table bridge kumo');
    assert.deepEqual(await converge(ports), []);
    await lab.server(vb, '192.0.2.11', 7000, 'B');

    assert.equal(await tcpHello(va, '192.0.2.11', 7000), 'B');
    assert.equal(await tcpHello(ve, '192.0.2.11', 7000), null, 'a kt port without config got through');

    await sh(va, 'ip', 'link', 'set', 'eth0', 'down');
    await sh(va, 'ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:00:99');
    await sh(va, 'ip', 'link', 'set', 'eth0', 'up');
    assert.equal(await tcpHello(va, '192.0.2.11', 7000), null, 'a forged MAC got through');
    await sh(va, 'ip', 'link', 'set', 'eth0', 'down');
    await sh(va, 'ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:00:0a');
    await sh(va, 'ip', 'link', 'set', 'eth0', 'up');
    assert.equal(await tcpHello(va, '192.0.2.11', 7000), 'B');

    await sh(va, 'ip', 'addr', 'add', '192.0.2.20/24', 'dev', 'eth0');
    assert.equal(await tcpHello(va, '192.0.2.11', 7000, { localAddress: '192.0.2.20' }), null, 'a forged IP got through');
    assert.equal(await tcpHello(va, '192.0.2.11', 7000, { localAddress: '192.0.2.10' }), 'B');

    // The address becomes A's: one set element more, and the same connection now passes.
    const more = [{ ...ports[0], ips: ['192.0.2.10', '192.0.2.20'] }, ports[1]];
    assert.deepEqual(await converge(more), [`nft: + ips ${A} 192.0.2.20`]);
    assert.equal(await tcpHello(va, '192.0.2.11', 7000, { localAddress: '192.0.2.20' }), 'B');

    // B leaves the config: its elements go, and its frames with them.
    assert.deepEqual(await converge([more[0]]), [`nft: - macs ${B} 02:00:00:00:00:0b`, `nft: - ips ${B} 192.0.2.11`]);
    assert.equal(await tcpHello(va, '192.0.2.11', 7000), null, 'B without config still answers');
  });
});
