import type { Command } from 'commander';
import { int } from '../../util.js';
import { act, group } from '../command.js';

const COLUMNS = ['edgeId', 'name', 'zone', 'uplink', 'macBudget', 'macsInUse', 'hosts'];

export function edgeCommands(program: Command): void {
  const edge = group(program, 'edge', 'edge switches of the zones (admin): hosts hang off their ports');
  edge.command('list').description('list the edge switches')
    .action(act(async (c) => c.print(await c.call('getEdgeList'), COLUMNS)));
  edge.command('create').description('register an edge switch of a zone (prints its id)').argument('<name>', 'a name, unique in its zone')
    .requiredOption('--zone <zone>', 'zone id or name')
    .requiredOption('--uplink <interface>', 'the edge\'s port toward the zone\'s gateway/core')
    .option('--mac-budget <n>', 'MAC addresses its table may hold (default 16384)', int)
    .action(act(async (c, [name], o) => c.print(await c.call('createEdge', { edge: { zone: o.zone, name, uplink: o.uplink, macBudget: o.macBudget } }))));
}
