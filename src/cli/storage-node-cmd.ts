// Server code is imported inside the action so client commands start fast.
import { Option, type Command } from 'commander';
import { readJoinToken } from './agent-cmd.js';
import { hostPort, onSignals } from './util.js';

export function storageNodeCommands(program: Command): void {
  program.command('storage-node')
    .description('run a storage node: stores volume blocks in DIR and serves them to frontends; registers with the controller')
    .requiredOption('--data <dir>', 'data directory: the block objects (sparse files) and node.json (this node\'s name, id, port and token)')
    .requiredOption('--controller <url>', 'controller URL, e.g. http://127.0.0.1:8780')
    .option('--zone <name>', 'zone of this node (created on first registration)', 'zone-1')
    .option('--join-token <token>', 'the controller\'s join token (the one agents use)')
    .option('--join-token-file <file>', 'file holding the join token (the controller writes DATA/join-token)')
    .addOption(new Option('--listen <host:port>', 'address of the block service; port 0 reuses the last run\'s port (node.json), else picks a free one')
      .argParser(hostPort).default({ host: '127.0.0.1', port: 0 }, '127.0.0.1:0'))
    .option('--advertise <host>', 'host frontends and other nodes connect to (default: the listen host; this machine\'s first external IPv4 when listening on 0.0.0.0)')
    .option('--name <name>', 'node name, unique in the cluster; registering again under it keeps the node id (default: the one in node.json, else <hostname>-<basename of DIR>)')
    .option('--log <file>', 'log file (default: stderr)')
    .action(async (o) => {
      const { StorageNodeDaemon } = await import('../storage/node/daemon.js');
      const { makeLogger } = await import('./log.js');
      const log = makeLogger('storage-node', o.log);
      const d = new StorageNodeDaemon({
        dataDir: o.data, zone: o.zone, controllerUrl: o.controller, joinToken: readJoinToken(o), listen: o.listen, advertise: o.advertise, name: o.name, log,
      });
      onSignals(() => d.stop());
      await d.start();
      if (!d.nodeId) return; // stopped before the controller answered
      process.stderr.write(`kumo storage-node: ${d.identity.name} (${d.nodeId}) in ${o.zone} serving at ${d.host}:${d.port}, data in ${o.data}\n`);
    });
}
