// Server code is imported inside the actions so client commands start fast.
import { hostname, cpus, totalmem } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import type { ComputeDriver } from '../compute/driver.js';
import { hostPort, int, onSignals } from './util.js';

export function readJoinToken(o: { joinToken?: string; joinTokenFile?: string }): string {
  const t = o.joinToken ?? (o.joinTokenFile ? readFileSync(o.joinTokenFile, 'utf8').trim() : process.env.KUMO_JOIN_TOKEN);
  if (!t) throw new Error('a join token is needed: --join-token, --join-token-file (the controller writes DATA/join-token) or KUMO_JOIN_TOKEN');
  return t;
}

/** Drivers by name; `auto` is QEMU when its binary is installed. Whatever is chosen is said in
 * one line, so a simulated host is never mistaken for a real one. */
export async function makeDriver(name: string, dataDir: string, hostName: string, o: { simBootMs: number; simShutdownMs: number }, log: Logger):
  Promise<{ driver: ComputeDriver; why: string }> {
  const qemu = qemuBinary();
  if (name === 'qemu' || (name === 'auto' && qemu)) {
    if (!qemu) throw new Error('compute driver qemu: qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86 qemu-utils)');
    const { QemuDriver } = await import('../compute/qemu/driver.js');
    const driver = new QemuDriver({ runDir: join(dataDir, 'vms'), log, qemuBinary: qemu });
    return { driver, why: `QEMU (${driver.accel}: ${driver.accelReason})` };
  }
  if (name !== 'sim' && name !== 'auto') throw new Error(`unknown compute driver "${name}"; choose auto, qemu or sim`);
  const { SimDriver } = await import('../compute/sim/driver.js');
  return {
    driver: new SimDriver({ bootMs: o.simBootMs, shutdownMs: o.simShutdownMs }, join(dataDir, `sim-${hostName}.json`)),
    why: name === 'sim' ? 'sim (simulated VMs, as asked)' : 'sim (simulated VMs): qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)',
  };
}

/**
 * `--storage-data`: the storage node of a hyperconverged host, in the agent's process. It is a
 * `kumo storage-node` in every other respect (registers with the join token, serves other hosts'
 * frontends and nodes over TCP, keeps DIR/node.json); it starts — and registers — before the
 * agent, so the frontend reaches it in process from the first volume it opens.
 */
async function startStorageNode(o: Record<string, any>, joinToken: string, log: Logger) {
  const { StorageNodeDaemon } = await import('../storage/node/daemon.js');
  const d = new StorageNodeDaemon({
    dataDir: o.storageData, zone: o.zone, controllerUrl: o.controller, joinToken, listen: o.storageListen, advertise: o.storageAdvertise,
    name: o.storageName, log: log.child({ component: 'storage-node' }),
  });
  await d.start();
  process.stderr.write(`kumo agent: storage node ${d.identity.name} (${d.nodeId}) runs in this process, reachable at ${d.host}:${d.port}, data in ${o.storageData}\n`);
  return d;
}

/** The metadata service on the VMs' first NICs, or one line saying why guests go without it. */
export async function makeMetadataLink(dataDir: string, log: Logger) {
  const { LinuxMetadataLink } = await import('../sdn/linux/metadata-link.js');
  const missing = await LinuxMetadataLink.missing();
  if (missing) {
    process.stderr.write(`kumo agent: no metadata service for guests: ${missing}\n`);
    return null;
  }
  process.stderr.write('kumo agent: metadata service at http://169.254.169.254/ on each VM\'s first NIC (DHCP by dnsmasq)\n');
  return new LinuxMetadataLink({ dir: join(dataDir, 'metadata', 'dhcp'), log: log.child({ component: 'metadata-link' }) });
}

function qemuBinary(): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin').split(':')) {
    const f = join(dir, 'qemu-system-x86_64');
    if (existsSync(f)) return f;
  }
  return null;
}

export function agentCommands(program: Command): void {
  program.command('agent')
    .description('run a hypervisor agent: registers this host with the controller and runs its VMs')
    .requiredOption('--controller <url>', 'controller URL, e.g. http://127.0.0.1:8780')
    .option('--zone <name>', 'zone of this host (created on first registration)', 'zone-1')
    .option('--host <name>', 'host name, unique in its zone', hostname())
    .option('--listen <host:port>', 'address the controller reaches this agent on', '127.0.0.1:8781')
    .option('--data <dir>', 'agent state directory', './data/agent')
    .option('--migration-address <addr>', 'address incoming live migrations listen on (QEMU picks a free port; default: the --listen host)')
    .option('--driver <name>', 'compute driver: auto (QEMU when installed, else sim), qemu or sim', 'auto')
    .option('--nocloud-seed', 'also attach a NoCloud `cidata` seed ISO (meta-data, user-data, network-config) to every VM started here, for guests that boot without network')
    .option('--join-token <token>', 'the controller\'s join token')
    .option('--join-token-file <file>', 'file holding the join token (the controller writes DATA/join-token)')
    .option('--vcpus <n>', 'vCPUs to offer (default: this machine\'s)', int, cpus().length)
    .option('--memory-mib <n>', 'memory to offer in MiB (default: this machine\'s)', int, Math.floor(totalmem() / 1048576))
    .option('--sim-boot-ms <ms>', 'sim driver: simulated boot time', int, 2000)
    .option('--sim-shutdown-ms <ms>', 'sim driver: simulated ACPI shutdown time', int, 1000)
    .option('--storage-data <dir>', 'also run a storage node in this process, storing in DIR (a hyperconverged host): it registers and serves other hosts like `kumo storage-node`, and this host\'s volumes reach it without a network hop')
    .option('--storage-name <name>', 'with --storage-data: the node\'s name (default: the one in DIR/node.json, else <hostname>-<basename of DIR>)')
    .addOption(new Option('--storage-listen <host:port>', 'with --storage-data: address of its block service; port 0 reuses the last run\'s port (node.json), else picks a free one')
      .argParser(hostPort).default({ host: '127.0.0.1', port: 0 }, '127.0.0.1:0'))
    .option('--storage-advertise <host>', 'with --storage-data: host other frontends and nodes connect to (default: the listen host)')
    .option('--log <file>', 'log file (default: stderr)')
    .action(async (o) => {
      const { Agent } = await import('../agent/server.js');
      const { makeLogger } = await import('./log.js');
      const log = makeLogger('agent', o.log);
      const joinToken = readJoinToken(o);
      const { driver, why } = await makeDriver(o.driver, o.data, o.host, o, log);
      process.stderr.write(`kumo agent: compute driver ${why}\n`);
      // Runs whatever the driver: with sim VMs it still serves restores, exports and other hosts.
      const node = o.storageData ? await startStorageNode(o, joinToken, log) : null;
      const localNode = node?.nodeId && node.server ? { nodeId: node.nodeId, server: node.server } : undefined;
      // Simulated VMs keep no data; real ones get their volumes from storage nodes over NBD.
      const { AgentStorage } = await import('../agent/storage.js');
      const storage = driver.name === 'sim' ? undefined : new AgentStorage({ dataDir: o.data, controllerUrl: o.controller, log, localNode });
      const metadataLink = driver.name === 'sim' ? null : await makeMetadataLink(o.data, log);
      const agent = new Agent({
        controllerUrl: o.controller, joinToken, zone: o.zone, listen: hostPort(o.listen), log, storage, migrationHost: o.migrationAddress,
        metadataLink, dataDir: o.data, nocloudSeed: !!o.nocloudSeed,
        hosts: [{ name: o.host, vcpus: o.vcpus, memoryMiB: o.memoryMib, architectures: ['x86_64', 'i686'], driver }],
      });
      await agent.start();
      process.stderr.write(`kumo agent: ${o.host} in ${o.zone} serving at ${agent.url}\n`);
      // The agent first: its volumes suspend while the node still answers.
      onSignals(async () => {
        await agent.stop();
        await node?.stop();
      });
    });

  program.command('sim')
    .description('run a simulated datacenter for scale work: ZONES × HOSTS sim hosts registered with a controller')
    .requiredOption('--controller <url>', 'controller URL')
    .option('--zones <n>', 'number of zones', int, 2)
    .option('--hosts <n>', 'hosts per zone', int, 10)
    .option('--vcpus <n>', 'vCPUs per host', int, 32)
    .option('--memory-mib <n>', 'memory per host in MiB', int, 131072)
    .option('--listen-host <addr>', 'address the agents listen on', '127.0.0.1')
    .option('--join-token <token>', 'the controller\'s join token')
    .option('--join-token-file <file>', 'file holding the join token')
    .option('--sim-boot-ms <ms>', 'simulated boot time', int, 2000)
    .option('--sim-shutdown-ms <ms>', 'simulated ACPI shutdown time', int, 1000)
    .option('--log <file>', 'log file (default: stderr)')
    .action(async (o) => {
      const { Agent } = await import('../agent/server.js');
      const { SimDriver } = await import('../compute/sim/driver.js');
      const { makeLogger } = await import('./log.js');
      const log = makeLogger('sim', o.log);
      const agents: InstanceType<typeof Agent>[] = [];
      for (let z = 1; z <= o.zones; z++) {
        const hosts = Array.from({ length: o.hosts }, (_, h) => ({
          name: `sim-z${z}-h${h + 1}`, vcpus: o.vcpus, memoryMiB: o.memoryMib, architectures: ['x86_64', 'i686'],
          driver: new SimDriver({ bootMs: o.simBootMs, shutdownMs: o.simShutdownMs }),
        }));
        const a = new Agent({ controllerUrl: o.controller, joinToken: readJoinToken(o), zone: `sim-zone-${z}`, listen: { host: o.listenHost, port: 0 }, log, hosts });
        await a.start();
        agents.push(a);
      }
      process.stderr.write(`kumo sim: ${o.zones} zones × ${o.hosts} simulated hosts registered with ${o.controller}\n`);
      onSignals(() => Promise.all(agents.map((a) => a.stop())));
    });
}
