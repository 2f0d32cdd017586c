#!/usr/bin/env node
import { Command } from 'commander';
import { agentCommands } from './agent-cmd.js';
import { serverCommands } from './server-cmd.js';
import { storageNodeCommands } from './storage-node-cmd.js';
import { clientCommands } from './client/index.js';

const program = new Command('kumo')
  .description('kumo: an IaaS cloud (HaaS XML-RPC + REST API, scheduler, request engine, agents)')
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false })
  // Usage errors exit 2 like other Unix tools; 1 stays for failures of the work itself.
  .exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2));

serverCommands(program);
agentCommands(program);
storageNodeCommands(program);
clientCommands(program);

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`kumo: ${e.message}\n`);
  process.exit(1);
});
