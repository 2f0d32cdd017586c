import type { Command } from 'commander';
import { int } from '../../util.js';
import { act, group } from '../command.js';

export function netCommands(program: Command): void {
  const net = group(program, 'net', 'networks: private L2 networks, shared L3 networks and their addresses, VM NICs');

  net.command('list').description('list your private networks and the shared L3 networks')
    .action(act(async (c) => c.print(await c.call('getNetworkList'))));
  net.command('show').description('show a network with its zone VLANs and members').argument('<net>', 'network id (net-…)')
    .action(act(async (c, [networkId]) => c.print(await c.call('getNetworkInfo', { networkId }))));
  net.command('create').description('create a private L2 network spanning every zone, /20 by default (prints its id)')
    .option('--name <name>', 'a name for the network')
    .option('--cidr <cidr>', 'address range, e.g. 10.1.0.0/20')
    .action(act(async (c, _, o) => c.print(await c.call('allocateNetwork', { network: { name: o.name, cidr: o.cidr } }))));
  net.command('create-shared').description('create a shared L3 network of global addresses (admin; prints its id)')
    .requiredOption('--name <name>', 'a name for the network')
    .requiredOption('--cidr <cidr>', 'address range, e.g. 203.0.113.0/24')
    .requiredOption('--gateway <ip>', 'gateway address inside the range')
    .action(act(async (c, _, o) => c.print(await c.call('createSharedNetwork', { network: { name: o.name, cidr: o.cidr, gateway: o.gateway } }))));
  net.command('delete').description('delete a network no VM is attached to').argument('<net>', 'network id')
    .action(act(async (c, [networkId]) => { await c.call('deallocateNetwork', { networkId }); c.done(`${networkId} deleted`); }));

  net.command('attach').description('plug a NIC on the network into a stopped VM (prints its slot and MAC)').argument('<vm>', 'VM id').argument('<net>', 'network id')
    .action(act(async (c, [vmId, networkId]) => c.print(await c.call('attachNetwork', { vmId, networkId }))));
  net.command('detach').description('unplug a NIC from a stopped VM').argument('<vm>', 'VM id').argument('<slot>', 'NIC slot (see `kumo vm show`)', int)
    .action(act(async (c, [vmId, slot]) => { await c.call('detachNetwork', { vmId, slot }); c.done(`${vmId} NIC ${slot} detached`); }));

  net.command('alloc-ip').description('take an address of a shared L3 network for your tenant (prints it)').argument('<net>', 'shared network id')
    .action(act(async (c, [networkId]) => c.print(await c.call('allocateIpAddress', { networkId }))));
  net.command('free-ip').description('give back an address of a shared network that no NIC holds').argument('<net>', 'shared network id').argument('<ip>', 'the address')
    .action(act(async (c, [networkId, ip]) => { await c.call('deallocateIpAddress', { networkId, ip }); c.done(`${ip} freed`); }));
  net.command('assign-ip').description('assign an allocated shared-network address to a VM\'s NIC').argument('<vm>', 'VM id').argument('<slot>', 'NIC slot', int).argument('<ip>', 'the address')
    .action(act(async (c, [vmId, slot, ip]) => { await c.call('assignIpAddress', { vmId, slot, ip }); c.done(`${ip} assigned to ${vmId} NIC ${slot}`); }));
  net.command('remove-ip').description('remove a shared-network address from a VM\'s NIC').argument('<vm>', 'VM id').argument('<slot>', 'NIC slot', int).argument('<ip>', 'the address')
    .action(act(async (c, [vmId, slot, ip]) => { await c.call('removeIpAddress', { vmId, slot, ip }); c.done(`${ip} removed from ${vmId} NIC ${slot}`); }));
}
