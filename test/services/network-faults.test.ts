/**
 * Malformed network requests (issue 5 acceptance): bad CIDRs, prefixes outside /16../29, addresses
 * outside the network, NIC changes on a running VM. Each is a documented fault and leaves every
 * table as it was.
 */
import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import type { Principal } from '../../src/services/principal.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault, registerDeadHosts } from './fixtures.js';
import { counts, placeOn, TENANT_QUOTA, vmOn } from './sdn-fixtures.js';

forEachDb('malformed network requests', (env) => {
  let admin: Principal, t: Principal;
  let host: string;
  before(async () => {
    admin = await newTenant(env.services, 'ops', {}, true);
    t = await newTenant(env.services, 'faultco', TENANT_QUOTA);
    [host] = await registerDeadHosts(env.services, 'zone-a', [{ name: 'a1' }]);
  });

  /** The fault, and not one row more or less anywhere. */
  async function refused(p: () => Promise<unknown>, code: number, msg?: RegExp): Promise<void> {
    const before = await counts(env.services);
    await fault(p(), code, msg);
    assert.deepEqual(await counts(env.services), before);
  }

  it('refuses bad CIDRs', async () => {
    const s = env.services;
    for (const cidr of ['', '10.0.0.0', '10.0.0.0/', '10.0.0.0/x', '10.0.0.0/20/1', '10.0.0.0/33', '10.0.0.256/24', '10.0.0.5/24', '10.0.1.0/20', '::/64', ' 10.0.0.0/24', '010.0.0.0/24']) {
      await refused(() => s.networks.allocate(t, { cidr }), Fault.INVALID_PARAMS, /CIDR/);
      await refused(() => s.networks.createShared(admin, { name: 'x', cidr, gateway: '10.0.0.1' }), Fault.INVALID_PARAMS, /CIDR/);
    }
  });

  it('accepts /16 to /29 and refuses larger and smaller networks', async () => {
    const s = env.services;
    for (const cidr of ['10.0.0.0/15', '10.0.0.0/8', '0.0.0.0/0', '10.0.0.0/30', '10.0.0.0/31', '10.0.0.0/32']) {
      await refused(() => s.networks.allocate(t, { cidr }), Fault.INVALID_PARAMS, /a network is a \/16 to \/29/);
      await refused(() => s.networks.createShared(admin, { name: 'x', cidr, gateway: '10.0.0.1' }), Fault.INVALID_PARAMS, /\/16 to \/29/);
    }
    const big = await s.networks.info(t, await s.networks.allocate(t, { cidr: '10.16.0.0/16' }));
    const small = await s.networks.info(t, await s.networks.allocate(t, { cidr: '10.99.0.8/29' }));
    assert.deepEqual([big.cidr, big.gateway, small.cidr, small.gateway], ['10.16.0.0/16', '10.16.0.1', '10.99.0.8/29', '10.99.0.9']);
    await s.networks.createShared(admin, { name: 'pub16', cidr: '100.64.0.0/16', gateway: '100.64.0.1' });
    await s.networks.createShared(admin, { name: 'pub29', cidr: '198.51.100.0/29', gateway: '198.51.100.6' });
  });

  it('refuses addresses outside the network', async () => {
    const s = env.services;
    await refused(() => s.networks.createShared(admin, { name: 'x', cidr: '192.0.2.0/29', gateway: '192.0.2.9' }), Fault.INVALID_PARAMS, /not a host address/);
    await refused(() => s.networks.createShared(admin, { name: 'x', cidr: '192.0.2.0/29', gateway: '192.0.2.7' }), Fault.INVALID_PARAMS, /not a host address/);
    const net = await s.networks.createShared(admin, { name: 'pub', cidr: '192.0.2.0/29', gateway: '192.0.2.1' });
    const priv = await s.networks.allocate(t, { cidr: '10.7.0.0/24' });
    const vm = await vmOn(s, t, net, priv);
    const ip = await s.networks.allocateIp(t, net);
    await s.networks.assignIp(t, vm, 0, ip);
    for (const outside of ['192.0.2.8', '192.0.2.0', '192.0.2.7', '10.0.0.1']) {
      await refused(() => s.networks.assignIp(t, vm, 0, outside), Fault.INVALID_PARAMS, /not a host address of 192\.0\.2\.0\/29/);
      await refused(() => s.networks.deallocateIp(t, net, outside), Fault.INVALID_PARAMS, /not a host address/);
      await refused(() => s.networks.removeIp(t, vm, 0, outside), Fault.INVALID_PARAMS, /not a host address/);
    }
    // The address check a guest's setIpAddress goes through: host address of the NIC's network, not its gateway, its prefix.
    const k = s.db.k;
    assert.equal((await s.networks.checkNicAddress(k, t, vm, 1, '10.7.0.20', 24)).id, priv);
    await fault(s.networks.checkNicAddress(k, t, vm, 1, '10.7.1.20', 24), Fault.INVALID_PARAMS, /not a host address of 10\.7\.0\.0\/24/);
    await fault(s.networks.checkNicAddress(k, t, vm, 1, '10.7.0.255', 24), Fault.INVALID_PARAMS, /not a host address/);
    await fault(s.networks.checkNicAddress(k, t, vm, 1, '10.7.0.1', 24), Fault.INVALID_PARAMS, /gateway/);
    await fault(s.networks.checkNicAddress(k, t, vm, 1, '10.7.0.20', 16), Fault.INVALID_PARAMS, /\/24, not \/16/);
    await fault(s.networks.checkNicAddress(k, t, vm, 1, 'ten', 24), Fault.INVALID_PARAMS, /not an IPv4 address/);
    await fault(s.networks.checkNicAddress(k, t, vm, 5, '10.7.0.20', 24), Fault.NOT_FOUND);
  });

  it('refuses NIC changes on a running VM with INVALID_STATE', async () => {
    const s = env.services;
    const n = await s.networks.allocate(t, {});
    const other = await s.networks.allocate(t, {});
    const vm = await vmOn(s, t, n);
    await placeOn(s, vm, host);
    await refused(() => s.networks.detach(t, vm, 0), Fault.INVALID_STATE, /detachNetwork needs .* stopped; it is running/);
    await refused(() => s.networks.attach(t, vm, other), Fault.INVALID_STATE, /attachNetwork needs .* stopped/);
    await refused(() => s.networks.deallocate(t, n), Fault.INVALID_STATE, /still attached/);
    // Starting and stopping VMs are running ones too for this purpose.
    for (const status of ['starting', 'stopping', 'migrating']) {
      await s.db.k.updateTable('vms').set({ status }).where('id', '=', vm).execute();
      await refused(() => s.networks.detach(t, vm, 0), Fault.INVALID_STATE, new RegExp(`it is ${status}`));
    }
  });
});
