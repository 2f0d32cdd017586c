#!/usr/bin/env node
import { Command } from 'commander';
import { agentCommands } from './agent-cmd.js';
import { serverCommands } from './server-cmd.js';

const program = new Command('kumo')
  .description('kumo: an IaaS cloud (HaaS XML-RPC + REST API, scheduler, request engine, agents)')
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false });

serverCommands(program);
agentCommands(program);

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`kumo: ${e.message}\n`);
  process.exit(1);
});
