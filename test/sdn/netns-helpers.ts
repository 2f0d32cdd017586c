/**
 * Namespace plumbing for the SDN driver tests: every namespace a test makes is named
 * `kumo-t-<tag>-<random>` and deleted by `cleanup()` (call it from t.after / after, so it runs on
 * failure too); deleting a namespace deletes every device in it, and a veth pair goes with either
 * end. Nothing is created in the root namespace. Traffic is TCP through small Node programs run
 * inside the endpoint namespaces (no ping needed): a server answers every connection with its name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { run } from '../../src/sdn/netns.js';

export const sh = (ns: string, cmd: string, ...args: string[]) => run(cmd, args, { netns: ns }).then((r) => r.stdout);
export const ipj = async (ns: string, ...args: string[]) => JSON.parse((await sh(ns, 'ip', '-json', ...args)) || '[]');
export const bridgej = async (ns: string, ...args: string[]) => JSON.parse((await sh(ns, 'bridge', '-json', ...args)) || '[]');

export class Lab {
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly suffix = randomBytes(3).toString('hex');

  /** A new, empty namespace with its loopback up. */
  async ns(tag: string): Promise<string> {
    const name = `kumo-t-${tag}-${this.suffix}`;
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await sh(name, 'ip', 'link', 'set', 'lo', 'up');
    return name;
  }

  /** A veth pair from `a` in namespace `nsA` to `b` in `nsB`, both ends up. */
  async veth(nsA: string, a: string, nsB: string, b: string): Promise<void> {
    await run('ip', ['-n', nsA, 'link', 'add', a, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
    await sh(nsA, 'ip', 'link', 'set', a, 'up');
    await sh(nsB, 'ip', 'link', 'set', b, 'up');
  }

  /** A VM stand-in: `eth0` in its own namespace, with a MAC and an address, its peer `port` in `hostNs`. */
  async endpoint(tag: string, hostNs: string, port: string, mac: string, cidr: string): Promise<string> {
    const ns = await this.ns(tag);
    await run('ip', ['-n', hostNs, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await sh(ns, 'ip', 'link', 'set', 'eth0', 'address', mac);
    await sh(ns, 'ip', 'addr', 'add', cidr, 'dev', 'eth0');
    await sh(ns, 'ip', 'link', 'set', 'eth0', 'up');
    return ns;
  }

  /** A TCP server in `ns` on ip:port that writes `name` to every connection; resolves once listening. */
  async server(ns: string, ip: string, port: number, name: string): Promise<void> {
    const js = `require('net').createServer((s) => s.end(${JSON.stringify(name)})).listen(${port}, ${JSON.stringify(ip)}, () => console.log('ready'))`;
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', js], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
      child.on('exit', (code) => reject(new Error(`server in ${ns} exited with ${code}`)));
    });
  }

  /** A long-running command in `ns` (tcpdump), stopped by cleanup() if the test does not. */
  spawnIn(ns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  async cleanup(): Promise<void> {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of this.namespaces.reverse()) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
}

/**
 * Connects from `ns` to ip:port (optionally from `localAddress`) and returns what the server said,
 * or null when no connection was made within `waitMs`. The wait bounds a negative answer only.
 */
export async function tcpHello(ns: string, ip: string, port: number, opts: { localAddress?: string; waitMs?: number } = {}): Promise<string | null> {
  const js = `const s = require('net').connect({ host: ${JSON.stringify(ip)}, port: ${port}${opts.localAddress ? `, localAddress: ${JSON.stringify(opts.localAddress)}` : ''} });
let got = ''; s.setTimeout(${opts.waitMs ?? 3000}, () => process.exit(2));
s.on('data', (d) => (got += d)); s.on('end', () => { console.log('GOT:' + got); process.exit(0); }); s.on('error', () => process.exit(1));`;
  try {
    const out = await run(process.execPath, ['-e', js], { netns: ns, timeoutMs: 60_000 });
    return /GOT:(.*)/.exec(out.stdout)?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * What this kernel can do, tried in a namespace of its own: null when everything the linux SDN
 * driver needs is there, else why not (for `skip`).
 */
export async function missingKernelFeatures(): Promise<string | null> {
  const ns = `kumo-t-probe-${randomBytes(3).toString('hex')}`;
  await run('ip', ['netns', 'add', ns]);
  const missing: string[] = [];
  const tryIn = (args: string[]) => run('ip', ['-n', ns, ...args]).then(() => true, () => false);
  try {
    if (!(await tryIn(['link', 'add', 'b0', 'type', 'bridge', 'vlan_filtering', '1']))) missing.push('bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)');
    if (!(await tryIn(['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1'])) || !(await tryIn(['link', 'add', 'link', 'd0', 'name', 'd0.5', 'type', 'vlan', 'id', '5']))) missing.push('802.1Q VLAN interfaces (CONFIG_VLAN_8021Q)');
    if (!(await tryIn(['link', 'add', 'x0', 'type', 'vxlan', 'dstport', '4789', 'external', 'local', '192.0.2.1']))) missing.push('VXLAN (CONFIG_VXLAN)');
    const nft = await run('nft', ['-f', '-'], { netns: ns, input: 'table bridge probe {\n chain c {\n type filter hook prerouting priority -200;\n }\n}\n' }).then(() => true, () => false);
    if (!nft) missing.push('nftables for bridges (CONFIG_NF_TABLES_BRIDGE, Debian package nftables)');
  } finally {
    await run('ip', ['netns', 'del', ns]);
  }
  return missing.length ? `kernel ${await run('uname', ['-r']).then((r) => r.stdout.trim())} lacks ${missing.join(', ')}` : null;
}
