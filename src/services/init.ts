import { invalidParams, notAvailableYet, notFound } from '../core/errors.js';
import { parseIp } from '../core/ipv4.js';
import type { Db } from '../state/db.js';
import type { Principal } from './principal.js';
import type { Vms } from './vms.js';

const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const MISSING = 'guest configuration is delivered by the metadata service (the metadata issue)';

/**
 * The HaaS init methods. Their input is checked now; applying them needs the metadata service, so
 * until it lands they end in a clear "not available yet" instead of a request that would never run.
 */
export class Init {
  constructor(private readonly db: Db, private readonly vms: Vms) {}

  private async vmSlot(p: Principal, vmId: string, slot?: number): Promise<never> {
    await this.vms.row(this.db.k, p, vmId);
    if (slot !== undefined) {
      const nic = await this.db.k.selectFrom('vm_nics').select('slot').where('vm_id', '=', vmId).where('slot', '=', slot).executeTakeFirst();
      if (!nic) throw notFound('NIC', `${vmId} slot ${slot}`);
    }
    throw notAvailableYet(MISSING);
  }

  async ipAddress(p: Principal, vmId: string, slot: number, address: string) {
    const [ip, prefix, extra] = address.split('/');
    if (extra !== undefined || parseIp(ip) === null || !/^\d{1,2}$/.test(prefix ?? '') || Number(prefix) > 32) {
      throw invalidParams(`address must be "ip/prefix", e.g. 10.0.0.5/20 (got ${JSON.stringify(address.slice(0, 40))})`);
    }
    return this.vmSlot(p, vmId, slot);
  }

  async network(p: Principal, vmId: string, n: { gateway?: string; dns?: string[]; hostname?: string }) {
    if (n.gateway !== undefined && parseIp(n.gateway) === null) throw invalidParams(`gateway is not an IPv4 address`);
    if (n.dns?.some((d) => parseIp(d) === null)) throw invalidParams('every dns entry must be an IPv4 address');
    if (n.hostname !== undefined && !/^(?!-)[A-Za-z0-9-]{1,63}(\.(?!-)[A-Za-z0-9-]{1,63})*$/.test(n.hostname)) throw invalidParams('hostname is not a valid host name');
    return this.vmSlot(p, vmId);
  }

  async user(p: Principal, vmId: string, user: string, secret: string, what: string) {
    if (!USER.test(user)) throw invalidParams(`user must be a Unix user name (got ${JSON.stringify(user.slice(0, 40))})`);
    if (secret.length === 0) throw invalidParams(`${what} must not be empty`);
    if (what === 'publicKey' && !/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$/.test(secret.trim())) throw invalidParams('publicKey is not an OpenSSH public key');
    return this.vmSlot(p, vmId);
  }

  async text(p: Principal, vmId: string) { return this.vmSlot(p, vmId); }

  async writeFile(p: Principal, vmId: string, path: string, content: string) {
    if (!path.startsWith('/') || path.split('/').includes('..')) throw invalidParams('path must be absolute and contain no ".."');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(content) || content.length % 4 !== 0) throw invalidParams('content must be base64');
    return this.vmSlot(p, vmId);
  }
}
