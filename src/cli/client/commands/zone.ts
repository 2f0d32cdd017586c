import type { Command } from 'commander';
import { act, group } from '../command.js';

export function zoneCommands(program: Command): void {
  const zone = group(program, 'zone', 'zones: L2 domains, each with its hosts, edges, storage nodes and SDN gateway');
  zone.command('list').description('list the zones')
    .action(act(async (c) => c.print(await c.call('getZoneList'))));
  zone.command('set-gateway').description('register a zone\'s SDN gateway (admin)').argument('<zone>', 'zone id or name')
    .requiredOption('--underlay <ip>', 'the gateway\'s VXLAN (underlay) address, e.g. 192.0.2.1')
    .requiredOption('--downlink <interface>', 'the gateway\'s port toward the zone\'s edges')
    .action(act(async (c, [zoneName], o) => {
      await c.call('setZoneGateway', { zone: zoneName, gateway: { underlayIp: o.underlay, downlink: o.downlink } });
      c.done(`${zoneName} gateway at ${o.underlay} (downlink ${o.downlink})`);
    }));
  zone.command('set-gateway-zone').description('make a zone the gateway zone: every network\'s gateway address and the backbone link (admin)')
    .argument('<zone>', 'zone id or name')
    .action(act(async (c, [zoneName]) => {
      await c.call('setGatewayZone', { zone: zoneName });
      c.done(`${zoneName} is the gateway zone`);
    }));
}
