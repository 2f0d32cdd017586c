import type WebSocket from 'ws';
import { AgentError, agentFault } from '../agent/client.js';
import { CONSOLE_MAX_TAIL, ConsoleClient } from '../agent/console-client.js';
import { invalidState } from '../core/errors.js';
import type { Db } from '../state/db.js';
import type { HostRow } from '../state/schema.js';
import type { Principal } from './principal.js';
import type { Vms } from './vms.js';

/** Control characters other than tab and line ends cannot travel in XML 1.0 (and so not in
 * XML-RPC); they are shown as their Unicode control pictures (ESC → ␛) rather than dropped. */
export function consoleText(raw: Buffer): string {
  // A tail cut through a multi-byte character starts with its continuation bytes.
  let start = 0;
  while (start < Math.min(3, raw.length) && (raw[start] & 0xc0) === 0x80) start++;
  return raw.subarray(start).toString('utf8')
    .replace(/[\x00-\x08\x0B\x0C\x0E-\x1F]/g, (c) => String.fromCharCode(0x2400 + c.charCodeAt(0)))
    .replace(/[\uFFFE\uFFFF]/g, '\uFFFD');
}

/**
 * A VM's serial console, as its owner may see it: the kept output is on the agent of the host the
 * VM runs or last ran on, so a VM that stopped or crashed still shows its last output.
 */
export class VmConsoles {
  constructor(private readonly db: Db, private readonly vms: Vms, private readonly agents = new ConsoleClient()) {}

  async host(p: Principal, vmId: string): Promise<HostRow> {
    const vm = await this.vms.row(this.db.k, p, vmId);
    const hostId = vm.host_id ?? vm.last_host_id;
    const host = hostId ? await this.db.k.selectFrom('hosts').selectAll().where('id', '=', hostId).executeTakeFirst() : undefined;
    if (!host) throw invalidState(`${vmId} has not run on any host yet`);
    return host;
  }

  async tail(p: Principal, vmId: string, bytes = CONSOLE_MAX_TAIL): Promise<Buffer> {
    const host = await this.host(p, vmId);
    try {
      return await this.agents.tail(host, vmId, Math.min(bytes, CONSOLE_MAX_TAIL));
    } catch (e) {
      // The agent's address is the operator's business, not the tenant's.
      if (e instanceof AgentError) throw agentFault(`reading the console of ${vmId}`, host, e);
      throw e;
    }
  }

  async text(p: Principal, vmId: string, bytes?: number): Promise<string> {
    return consoleText(await this.tail(p, vmId, bytes));
  }

  /** A websocket to the agent: `tailBytes` of kept output first, then live output; input goes to the guest. */
  async attach(p: Principal, vmId: string, tailBytes: number): Promise<WebSocket> {
    return this.agents.attach(await this.host(p, vmId), vmId, Math.min(tailBytes, CONSOLE_MAX_TAIL));
  }
}

const cache = new WeakMap<object, VmConsoles>();

/** One VmConsoles per service layer, made on first use (services/index.ts need not know of it). */
export function consoles(s: { db: Db; vms: Vms }): VmConsoles {
  let c = cache.get(s);
  if (!c) { c = new VmConsoles(s.db, s.vms); cache.set(s, c); }
  return c;
}
