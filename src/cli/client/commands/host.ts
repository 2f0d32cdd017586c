import { Argument, type Command } from 'commander';
import { act, asyncOptions, group } from '../command.js';

const COLUMNS = ['hostId', 'name', 'zone', 'status', 'pool', 'dedicatedTenant', 'maintenance', 'vcpus', 'memoryMiB', 'vms', 'driver', 'accel', 'edgeId', 'edgePort', 'uplink'];

export function hostCommands(program: Command): void {
  const host = group(program, 'host', 'hypervisor hosts (admin): capacity, pools, maintenance, draining, edge wiring');
  host.command('list').description('list the hosts')
    .action(act(async (c) => c.print(await c.call('getHostList'), COLUMNS)));
  host.command('show').description('show a host and the VMs placed on it').argument('<host>', 'host id (host-…)')
    .action(act(async (c, [hostId]) => c.print(await c.call('getHostInfo', { hostId }))));
  host.command('maintenance').description('put a host in maintenance (no new placements) or take it out')
    .argument('<host>', 'host id').addArgument(new Argument('<state>', 'on or off').choices(['on', 'off']))
    .action(act(async (c, [hostId, state]) => {
      await c.call('setHostMaintenance', { hostId, maintenance: state === 'on' });
      c.done(`${hostId} maintenance ${state}`);
    }));
  host.command('pool').description('make a host shared by all tenants, or dedicated to one tenant')
    .argument('<host>', 'host id').addArgument(new Argument('<pool>', 'shared or dedicated').choices(['shared', 'dedicated']))
    .option('--tenant <tenant>', 'the tenant a dedicated host belongs to (tenant-…)')
    .action(act(async (c, [hostId, pool], o) => {
      await c.call('setHostPool', { hostId, pool: { pool, tenantId: o.tenant } });
      c.done(`${hostId} is ${pool}${o.tenant ? ` to ${o.tenant}` : ''}`);
    }));
  asyncOptions(host.command('drain')
    .description('put a host in maintenance and live-migrate every VM away (the controller\'s --drain-concurrency at once); '
      + 'the result lists the VMs moved and those that cannot move, with the reason, so their owners can be asked to stop them')
    .argument('<host>', 'host id'))
    .action(act(async (c, [hostId]) => c.submit('drainHost', { hostId })));
  host.command('undrain').description('take a drained host out of maintenance: it takes new VMs again').argument('<host>', 'host id')
    .action(act(async (c, [hostId]) => {
      await c.call('setHostMaintenance', { hostId, maintenance: false });
      c.done(`${hostId} takes new VMs again`);
    }));
  host.command('set-edge').description('wire a host to a port of an edge switch of its zone')
    .argument('<host>', 'host id').argument('<edge>', 'edge id (edge-…)')
    .requiredOption('--port <port>', 'the edge\'s port (interface) toward the host')
    .option('--uplink <interface>', 'the host\'s interface toward the edge (default: unchanged, eth0 at first)')
    .action(act(async (c, [hostId, edgeId], o) => {
      await c.call('setHostEdge', { hostId, edge: { edgeId, port: o.port, uplink: o.uplink } });
      c.done(`${hostId} hangs off ${edgeId} port ${o.port}`);
    }));
}
