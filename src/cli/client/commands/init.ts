import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { int } from '../../util.js';
import { act, asyncOptions, group } from '../command.js';
import { CliError } from '../connection.js';

/** A file's bytes, or stdin's for "-". */
async function input(file: string): Promise<Buffer> {
  if (file !== '-') {
    try { return readFileSync(file); } catch (e) { throw new CliError(`cannot read ${file}: ${(e as Error).message}`); }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export const text = async (file: string) => (await input(file)).toString('utf8');

export function initCommands(program: Command): void {
  const init = group(program, 'init', 'configure a running or stopped guest through the metadata service: addresses, network, users, firewall, sshd, files. Each change is a new generation of the VM\'s configuration; a running guest (the tiny image\'s agent) applies it and confirms, a stopped VM gets it at its next boot. cloud-init guests read it at boot only.');
  const cmd = (name: string, description: string) => asyncOptions(init.command(name).description(`${description}; ends once the guest applied it (a stopped VM: once stored)`));

  cmd('set-ip', 'give a NIC an address').argument('<vm>', 'VM id').argument('<slot>', 'NIC slot', int).argument('<address>', 'ip/prefix, e.g. 10.0.0.5/20')
    .action(act(async (c, [vmId, slot, address]) => c.submit('setIpAddress', { vmId, slot, address })));
  cmd('unset-ip', 'take an address off a NIC').argument('<vm>', 'VM id').argument('<slot>', 'NIC slot', int).argument('<address>', 'ip/prefix')
    .action(act(async (c, [vmId, slot, address]) => c.submit('unsetIpAddress', { vmId, slot, address })));
  cmd('network', 'set the gateway, DNS servers and hostname (each only when given)').argument('<vm>', 'VM id')
    .option('--gateway <ip>', 'default gateway')
    .option('--dns <ips>', 'DNS servers, comma-separated (at most 8)', (v: string) => v.split(',').filter(Boolean))
    .option('--hostname <name>', 'host name')
    .action(act(async (c, [vmId], o) => c.submit('setNetwork', { vmId, network: { gateway: o.gateway, dns: o.dns, hostname: o.hostname } })));
  // The password comes from stdin, never the command line, where other users' `ps` would show it.
  cmd('password', 'set a user\'s password, read from stdin (one line); the controller keeps only its SHA-512 crypt hash')
    .argument('<vm>', 'VM id').argument('<user>', 'Unix user name')
    .action(act(async (c, [vmId, user]) => {
      const password = (await text('-')).replace(/\r?\n$/, '');
      if (password === '') throw new CliError('no password on stdin, e.g. `kumo init password VM root < pwfile`');
      return c.submit('setPassword', { vmId, user, password });
    }));
  cmd('ssh-key', 'authorize an SSH public key for a user').argument('<vm>', 'VM id').argument('<user>', 'Unix user name')
    .argument('<keyfile>', 'public key file, e.g. ~/.ssh/id_ed25519.pub, or - for stdin')
    .action(act(async (c, [vmId, user, file]) => c.submit('setSshKey', { vmId, user, publicKey: (await text(file)).trim() })));
  cmd('iptables', 'set the firewall rules').argument('<vm>', 'VM id').argument('<file>', 'rules in iptables-save format, or - for stdin')
    .action(act(async (c, [vmId, file]) => c.submit('setIptables', { vmId, rules: await text(file) })));
  cmd('sshd-config', 'set the sshd configuration').argument('<vm>', 'VM id').argument('<file>', 'sshd_config text, or - for stdin')
    .action(act(async (c, [vmId, file]) => c.submit('setSshdConfig', { vmId, text: await text(file) })));
  cmd('write-file', 'write a file (at most 64 KiB) at a path on the operator\'s whitelist').argument('<vm>', 'VM id')
    .argument('<path>', 'absolute path in the guest').argument('<file>', 'local file with the content, or - for stdin')
    .option('--mode <octal>', 'file mode, e.g. 0600 (default 0644)')
    .action(act(async (c, [vmId, path, file], o) => c.submit('writeFile', { vmId, path, content: (await input(file)).toString('base64'), mode: o.mode })));
}
