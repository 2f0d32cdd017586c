/**
 * The `linux` SDN driver: reads a device's state back (`ip -json`, `bridge -json`, `nft -j`),
 * plans the difference to its config (plan.ts, plan-gateway.ts, antispoof.ts: pure), and runs it
 * as one `ip -batch -`, one `bridge -batch -` and one `nft -f -` process. It then reads the state
 * again and plans once more: a correct plan leaves nothing to do, so the second look both checks
 * the work and finishes what a first round had to leave (a bridge whose VLAN settings changed).
 *
 * `netns` runs everything inside that network namespace (tests and the lab). Calls on one driver
 * are serialised: two plans made from the same observation would step on each other.
 */
import { deviceId, SdnDriverError, type ApplyReport, type DeviceKind, type DeviceOf, type SdnDriver } from '../driver.js';
import { CommandError, run } from '../netns.js';
import { EDGE_BRIDGE, GATEWAY_BRIDGE, GATEWAY_VXLAN, HOST_BRIDGE, type DeviceConfig } from '../types.js';
import { applyNft, deleteNftTable, readNft } from './antispoof.js';
import { observe, type Observed } from './observe.js';
import { planGateway } from './plan-gateway.js';
import { planEdge, planHost, type Plan } from './plan.js';
import { readEdge, readGateway, readHost } from './readback.js';

export interface LinuxSdnOptions { netns?: string }

/** Rounds of observe → plan → run before an apply that still finds work is declared a failure. */
const MAX_ROUNDS = 3;
const BRIDGES: Record<DeviceKind, string> = { host: HOST_BRIDGE, edge: EDGE_BRIDGE, gateway: GATEWAY_BRIDGE };

function planFor(device: DeviceConfig, obs: Observed): Plan {
  switch (device.kind) {
    case 'host': return planHost(device.config, obs);
    case 'edge': return planEdge(device.config, obs);
    case 'gateway': return planGateway(device.config, obs);
  }
}

function emptyReport(kind: DeviceKind, id: string): ApplyReport {
  return { kind, id, changes: 0, counts: { ip: 0, bridge: 0, nft: 0, sim: 0 }, commands: [] };
}

/** Turns a failed command into an error that says what to do about it. */
function explain(e: unknown): never {
  if (!(e instanceof CommandError)) throw e;
  let hint = '';
  if (/Operation not supported/.test(e.stderr)) {
    hint = ' — this kernel lacks a feature kumo needs: bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING), 802.1Q (CONFIG_VLAN_8021Q), VXLAN or nftables for bridges';
  } else if (/ENOENT|exec of .* failed/.test(e.stderr)) {
    hint = ' — a command is missing (Debian packages iproute2, nftables)';
  }
  throw new SdnDriverError('linux', `${e.message}${hint}`);
}

export class LinuxSdnDriver implements SdnDriver {
  readonly name = 'linux' as const;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: LinuxSdnOptions = {}) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private observe(kind: DeviceKind): Promise<Observed> {
    return observe({ netns: this.opts.netns }, kind, () => readNft(this.opts.netns)).catch(explain);
  }

  apply(device: DeviceConfig): Promise<ApplyReport> {
    return this.serial(async () => {
      const report = emptyReport(device.kind, deviceId(device));
      for (let round = 1; ; round++) {
        const plan = planFor(device, await this.observe(device.kind));
        const todo = [...plan.ip.map((l) => `ip ${l}`), ...plan.bridge.map((l) => `bridge ${l}`), ...plan.nft.changes];
        if (todo.length === 0) return report;
        if (round > MAX_ROUNDS) throw new SdnDriverError('linux', `${report.kind} ${report.id} does not converge; still to do: ${todo.join('; ')}`);
        await this.execute(plan);
        report.commands.push(...todo);
        report.counts.ip += plan.ip.length;
        report.counts.bridge += plan.bridge.length;
        report.counts.nft += plan.nft.changes.length;
        report.changes += todo.length;
      }
    });
  }

  private async execute(plan: Plan): Promise<void> {
    const netns = this.opts.netns;
    try {
      if (plan.ip.length) await run('ip', ['-batch', '-'], { netns, input: plan.ip.join('\n') + '\n' });
      if (plan.bridge.length) await run('bridge', ['-batch', '-'], { netns, input: plan.bridge.join('\n') + '\n' });
      if (plan.nft.script) await applyNft(netns, plan.nft.script);
    } catch (e) {
      explain(e);
    }
  }

  read<K extends DeviceKind>(kind: K, id: string): Promise<DeviceOf<K> | null> {
    return this.serial(async () => {
      const obs = await this.observe(kind);
      const config = kind === 'host' ? readHost(obs, id) : kind === 'edge' ? readEdge(obs, id) : readGateway(obs, id);
      return (config ? { kind, config } : null) as DeviceOf<K> | null;
    });
  }

  /** Deletes the device's bridge (ports fall off it; taps stay: compute owns them), kvx0, rules, aliases. */
  remove(kind: DeviceKind, id: string): Promise<ApplyReport> {
    return this.serial(async () => {
      const report = emptyReport(kind, id);
      const obs = await this.observe(kind);
      const bridge = BRIDGES[kind];
      const b = obs.links.get(bridge);
      const lines: string[] = [];
      if (b && b.kind === 'bridge' && (b.alias === `kumo:${kind}:${id}` || !b.alias?.startsWith('kumo:'))) {
        for (const l of obs.links.values()) if (l.master === bridge && l.alias?.startsWith('kumo:')) lines.push(`link set dev ${l.name} alias ""`);
        if (kind === 'gateway' && obs.links.has(GATEWAY_VXLAN)) lines.push(`link del dev ${GATEWAY_VXLAN}`);
        // VLAN interfaces on the bridge go with it.
        lines.push(`link del dev ${bridge}`);
      }
      try {
        if (lines.length) await run('ip', ['-batch', '-'], { netns: this.opts.netns, input: lines.join('\n') + '\n' });
        if (kind === 'host' && (await deleteNftTable(this.opts.netns))) lines.push('nft delete table bridge kumo');
      } catch (e) {
        explain(e);
      }
      report.commands = lines.map((l) => (l.startsWith('nft') ? l : `ip ${l}`));
      report.counts.ip = lines.filter((l) => !l.startsWith('nft')).length;
      report.counts.nft = lines.length - report.counts.ip;
      report.changes = lines.length;
      return report;
    });
  }
}
