/**
 * The metadata link on Linux (metadata/link.ts). For each VM's first tap:
 * - the tap holds 169.254.169.254/16 without a prefix route, and a /32 route leads to the guest's
 *   own link-local address, so replies find the right tap even when tenants reuse addresses;
 * - one dnsmasq per tap (DHCP only, bound to that device, like libvirt's per network) leases the
 *   guest its address — cloud-init's OpenStack datasource and the tiny guest both ask by DHCP;
 * - nftables (table ip kumo_metadata) sends the tap's TCP to 169.254.169.254:80 to 127.0.0.1:<port
 *   of this VM> (route_localnet on the tap), and lets a guest reach this host only for DHCP, ICMP
 *   echo and its own port from its own address: the port a connection arrives on is the VM.
 * The dnsmasq processes outlive the agent, as QEMU does; their pid files are in `dir`/<vmId>/.
 */
import { mkdir, rm } from 'node:fs/promises';
import { alive, procCmdline, readPidfile, signal } from '../../core/proc.js';
import { join } from 'node:path';
import { METADATA_IP, vmFileName, type MetadataLink, type MetadataLinkSpec } from '../../metadata/link.js';
import { CommandError, run } from '../netns.js';

const TABLE = 'kumo_metadata';
const DEVICE = /^[A-Za-z0-9_.-]{1,15}$/;
const ADDRESS = /^169\.254\.\d{1,3}\.\d{1,3}$/;
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

// Created once per kernel; `add` of the table, sets and chains is idempotent, rules are not (see ensureTable).
const TABLE_SCRIPT = `add table ip ${TABLE}
add set ip ${TABLE} taps { type ifname; }
add map ip ${TABLE} ports { type ifname : inet_service; }
add set ip ${TABLE} allowed { type ifname . ipv4_addr . inet_service; }
add chain ip ${TABLE} pre { type nat hook prerouting priority dstnat; policy accept; }
add chain ip ${TABLE} in { type filter hook input priority filter; policy accept; }
add rule ip ${TABLE} pre iifname @taps ip daddr ${METADATA_IP} tcp dport 80 dnat to 127.0.0.1 : iifname map @ports
add rule ip ${TABLE} in iifname @taps udp dport 67 accept
add rule ip ${TABLE} in iifname @taps icmp type echo-request accept
add rule ip ${TABLE} in iifname . ip saddr . tcp dport @allowed accept
add rule ip ${TABLE} in iifname @taps drop
`;

export interface LinuxMetadataLinkOptions { dir: string; log: { info(o: object, m: string): void; warn(o: object, m: string): void } }

export class LinuxMetadataLink implements MetadataLink {
  private table: Promise<void> | null = null;

  constructor(private readonly o: LinuxMetadataLinkOptions) {}

  /** What the link needs, or why it cannot work: one line, for the agent's start-up message. */
  static async missing(): Promise<string | null> {
    for (const [bin, pkg] of [['dnsmasq', 'dnsmasq-base'], ['nft', 'nftables'], ['ip', 'iproute2']]) {
      try { await run('sh', ['-c', `command -v ${bin} || test -x /usr/sbin/${bin}`]); } catch { return `${bin} is not installed (apt-get install ${pkg})`; }
    }
    return null;
  }

  async attach(s: MetadataLinkSpec): Promise<void> {
    check(s.device, s.guestAddress);
    if (!MAC.test(s.mac)) throw new Error(`bad MAC ${JSON.stringify(s.mac)}`);
    await this.ensureTable();
    await run('ip', ['link', 'set', 'dev', s.device, 'up']);
    await run('ip', ['addr', 'replace', `${METADATA_IP}/16`, 'dev', s.device, 'noprefixroute']);
    await run('sysctl', ['-qw', `net.ipv4.conf.${s.device}.route_localnet=1`]);
    await run('ip', ['route', 'replace', `${s.guestAddress}/32`, 'dev', s.device, 'src', METADATA_IP]);
    await this.dropElements(s.device);
    await run('nft', ['-f', '-'], { input: `add element ip ${TABLE} taps { "${s.device}" }
add element ip ${TABLE} ports { "${s.device}" : ${s.port} }
add element ip ${TABLE} allowed { "${s.device}" . ${s.guestAddress} . ${s.port} }
` });
    await this.ensureDhcp(s);
  }

  async detach(vmId: string, device: string, guestAddress: string): Promise<void> {
    check(device, guestAddress);
    await this.stopDhcp(vmId);
    await this.dropElements(device);
    await run('ip', ['route', 'del', `${guestAddress}/32`, 'dev', device]).catch(() => {});
  }

  async addressesInUse(): Promise<Set<string>> {
    const { stdout } = await run('ip', ['-j', 'route', 'show', 'root', '169.254.0.0/16']);
    return new Set((JSON.parse(stdout || '[]') as { dst: string }[]).map((r) => r.dst.replace(/\/32$/, '')).filter((a) => ADDRESS.test(a)));
  }

  /** Rules are appended by `add rule`, so the table is made only when absent (kumo_metadata is kumo's alone). */
  private ensureTable(): Promise<void> {
    this.table ??= (async () => {
      try {
        await run('nft', ['list', 'table', 'ip', TABLE]);
      } catch (e) {
        if (!(e instanceof CommandError)) throw e;
        await run('nft', ['-f', '-'], { input: TABLE_SCRIPT });
      }
    })().catch((e: Error) => { this.table = null; throw e; });
    return this.table;
  }

  /** A device's elements go one by one: a batch fails whole when one is missing (nft 1.0.6 has no `destroy`). */
  private async dropElements(device: string): Promise<void> {
    const { stdout } = await run('nft', ['-j', 'list', 'table', 'ip', TABLE]);
    const q = JSON.stringify(device);
    for (const line of elementsOf(stdout, device)) await run('nft', ['delete', 'element', 'ip', TABLE, line.set, `{ ${line.key.replace(device, q)} }`]).catch(() => {});
  }

  private vmDir(vmId: string) { return join(this.o.dir, vmFileName(vmId)); }

  private async ensureDhcp(s: MetadataLinkSpec): Promise<void> {
    const dir = this.vmDir(s.vmId);
    const pidfile = join(dir, 'dnsmasq.pid');
    const argv = [
      '--conf-file=/dev/null', '--port=0', `--interface=${s.device}`, '--bind-interfaces', '--except-interface=lo',
      `--dhcp-range=${s.guestAddress},static,255.255.0.0,1h`, `--dhcp-host=${s.mac.toLowerCase()},${s.guestAddress}`,
      '--dhcp-authoritative', '--dhcp-option=3', '--dhcp-option=6', `--dhcp-leasefile=${join(dir, 'leases')}`,
      `--pid-file=${pidfile}`, `--log-facility=${join(dir, 'dnsmasq.log')}`, '--log-dhcp',
    ];
    const pid = livePid(pidfile);
    if (pid !== null && sameArgs(pid, argv)) return;
    if (pid !== null) await stopPid(pid);
    await mkdir(dir, { recursive: true });
    await rm(join(dir, 'leases'), { force: true });
    await run('dnsmasq', argv);
    this.o.log.info({ vmId: s.vmId, device: s.device, guestAddress: s.guestAddress, pid: livePid(pidfile) }, 'metadata DHCP started');
  }

  private async stopDhcp(vmId: string): Promise<void> {
    const dir = this.vmDir(vmId);
    const pid = livePid(join(dir, 'dnsmasq.pid'));
    if (pid !== null) await stopPid(pid);
    await rm(dir, { recursive: true, force: true });
  }
}

function check(device: string, guestAddress: string): void {
  if (!DEVICE.test(device)) throw new Error(`bad device name ${JSON.stringify(device)}`);
  if (!ADDRESS.test(guestAddress)) throw new Error(`bad guest address ${JSON.stringify(guestAddress)}`);
}

/** The set elements naming `device`, as `nft delete element` keys. */
function elementsOf(json: string, device: string): { set: string; key: string }[] {
  const out: { set: string; key: string }[] = [];
  for (const item of (JSON.parse(json) as { nftables: Record<string, any>[] }).nftables) {
    const set = item.set ?? item.map;
    for (const e of set?.elem ?? []) {
      const key = Array.isArray(e) ? e[0] : e;
      if (key === device) out.push({ set: set.name, key: device });
      else if (key?.concat?.[0] === device) out.push({ set: set.name, key: (key.concat as string[]).map((p, i) => (i === 0 ? device : p)).join(' . ') });
    }
  }
  return out;
}

/** The dnsmasq of this pid file, if it runs (pids are reused: the command must be dnsmasq). */
function livePid(pidfile: string): number | null {
  const pid = readPidfile(pidfile);
  return pid !== null && alive(pid) && procCmdline(pid)?.[0]?.endsWith('dnsmasq') ? pid : null;
}

const sameArgs = (pid: number, argv: string[]) => {
  const now = procCmdline(pid)?.slice(1) ?? [];
  return now.length === argv.length && now.every((a, i) => a === argv[i]);
};

async function stopPid(pid: number): Promise<void> {
  signal(pid, 'SIGTERM');
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
}
