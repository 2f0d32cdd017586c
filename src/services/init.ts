import { invalidParams, notFound } from '../core/errors.js';
import { parseIp } from '../core/ipv4.js';
import { hashPassword } from '../core/sha512-crypt.js';
import type { Db } from '../state/db.js';
import { now } from '../state/db.js';
import type { InitMethod, InitPayloads } from './guest-config.js';
import type { Principal } from './principal.js';
import type { Requests } from './requests.js';
import type { Vms } from './vms.js';
import { DEFAULT_WRITE_WHITELIST, WriteWhitelist } from './write-whitelist.js';

const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const HOSTNAME = /^(?!-)[A-Za-z0-9-]{1,63}(\.(?!-)[A-Za-z0-9-]{1,63})*$/;
const MAX_PASSWORD = 1024;
const MAX_IPTABLES = 256 * 1024;
const MAX_SSHD_CONFIG = 64 * 1024;
const MAX_FILE = 64 * 1024;
const MODE = /^0?[0-7]{3}$/;

const checkUser = (user: string) => {
  if (!USER.test(user)) throw invalidParams(`user must be a Unix user name (got ${JSON.stringify(user.slice(0, 40))})`);
};
const checkText = (text: string, max: number, what: string) => {
  if (text.length > max) throw invalidParams(`${what} is longer than ${max} characters`);
  if (text.includes('\0')) throw invalidParams(`${what} contains NUL`);
};

const KEY_LINE = /^((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})( [^\x00-\x1f\x7f]*)?$/;

/**
 * The key line, trimmed, if it is an OpenSSH public key whose blob holds what its type names: a
 * run of length-prefixed fields, the first the type, ending exactly at the blob's end (ed25519: a
 * 32-byte key). A key sshd would skip is refused here rather than lock the user out later.
 */
function checkSshKey(line: string): string {
  const key = line.trim();
  const bad = () => invalidParams('publicKey is not an OpenSSH public key ("type base64 [comment]")');
  const m = KEY_LINE.exec(key);
  if (!m) throw bad();
  const blob = Buffer.from(m[2], 'base64');
  const fields: Buffer[] = [];
  for (let at = 0; at < blob.length;) {
    if (at + 4 > blob.length) throw bad();
    const len = blob.readUInt32BE(at);
    if (at + 4 + len > blob.length) throw bad();
    fields.push(blob.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  if (fields.length < 2 || fields[0].toString('latin1') !== m[1]) throw bad();
  if (m[1] === 'ssh-ed25519' && (fields.length !== 2 || fields[1].length !== 32)) throw bad();
  return key;
}

/**
 * The HaaS init methods. Each checks its input, then records a new generation of the VM's guest
 * configuration and queues a request named after the method, whose params carry only the
 * generation: the configuration itself (hashes, keys, files) stays in vm_config_generations.
 */
export class Init {
  constructor(
    private readonly db: Db, private readonly vms: Vms, private readonly requests: Requests,
    // The operator's file's whitelist, else the default.
    private readonly whitelist = new WriteWhitelist(DEFAULT_WRITE_WHITELIST),
  ) {}

  private async record<M extends InitMethod>(p: Principal, vmId: string, kind: M, payload: InitPayloads[M], slot?: number): Promise<string> {
    const requests = this.requests;
    return this.db.k.transaction().execute(async (trx) => {
      // The same lock as the VM's other requests: generations are numbered without gaps or twins.
      await this.db.lock(trx, `vm:${vmId}`);
      const vm = await this.vms.row(trx, p, vmId);
      if (slot !== undefined) {
        const nic = await trx.selectFrom('vm_nics').select('slot').where('vm_id', '=', vmId).where('slot', '=', slot).executeTakeFirst();
        if (!nic) throw notFound('NIC', `${vmId} slot ${slot}`);
      }
      const cur = await trx.selectFrom('vm_config_current').select('generation').where('vm_id', '=', vmId).executeTakeFirst();
      const generation = (cur?.generation ?? 0) + 1;
      const at = now();
      const requestId = await requests.submit(trx, vm.tenant_id, kind, vmId, { generation });
      await trx.insertInto('vm_config_generations').values({
        vm_id: vmId, generation, created_at: at, kind, payload: JSON.stringify(payload), status: 'pending', request_id: requestId,
      }).execute();
      if (cur) await trx.updateTable('vm_config_current').set({ generation, updated_at: at }).where('vm_id', '=', vmId).execute();
      else await trx.insertInto('vm_config_current').values({ vm_id: vmId, generation, updated_at: at }).execute();
      return requestId;
    });
  }

  /** setIpAddress / unsetIpAddress: `address` is "ip/prefix". */
  async ipAddress(p: Principal, vmId: string, slot: number, address: string, unset = false): Promise<string> {
    const [ip, prefix, extra] = address.split('/');
    if (extra !== undefined || parseIp(ip) === null || !/^\d{1,2}$/.test(prefix ?? '') || Number(prefix) > 32) {
      throw invalidParams(`address must be "ip/prefix", e.g. 10.0.0.5/20 (got ${JSON.stringify(address.slice(0, 40))})`);
    }
    return this.record(p, vmId, unset ? 'unsetIpAddress' : 'setIpAddress', { slot, address }, slot);
  }

  async network(p: Principal, vmId: string, n: { gateway?: string; dns?: string[]; hostname?: string }): Promise<string> {
    if (n.gateway !== undefined && parseIp(n.gateway) === null) throw invalidParams(`gateway is not an IPv4 address`);
    if (n.dns?.some((d) => parseIp(d) === null)) throw invalidParams('every dns entry must be an IPv4 address');
    if (n.dns && n.dns.length > 8) throw invalidParams('at most 8 dns servers');
    if (n.hostname !== undefined && (n.hostname.length > 253 || !HOSTNAME.test(n.hostname))) throw invalidParams('hostname is not a valid host name');
    const { gateway, dns, hostname } = n;
    return this.record(p, vmId, 'setNetwork', { gateway, dns, hostname });
  }

  /** Only the SHA-512 crypt hash goes further than this method; the password is never stored or logged. */
  async password(p: Principal, vmId: string, user: string, password: string): Promise<string> {
    checkUser(user);
    if (password.length === 0) throw invalidParams('password must not be empty');
    checkText(password, MAX_PASSWORD, 'password');
    return this.record(p, vmId, 'setPassword', { user, passwordHash: hashPassword(password) });
  }

  async sshKey(p: Principal, vmId: string, user: string, publicKey: string): Promise<string> {
    checkUser(user);
    return this.record(p, vmId, 'setSshKey', { user, publicKey: checkSshKey(publicKey) });
  }

  async iptables(p: Principal, vmId: string, rules: string): Promise<string> {
    checkText(rules, MAX_IPTABLES, 'rules');
    return this.record(p, vmId, 'setIptables', { rules });
  }

  async sshdConfig(p: Principal, vmId: string, text: string): Promise<string> {
    checkText(text, MAX_SSHD_CONFIG, 'text');
    return this.record(p, vmId, 'setSshdConfig', { text });
  }

  /** `content` is base64 of at most 64 KiB; `mode` an octal string without setuid/setgid/sticky bits. */
  async writeFile(p: Principal, vmId: string, path: string, content: string, mode = '0644'): Promise<string> {
    this.whitelist.check(path);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(content) || content.length % 4 !== 0) throw invalidParams('content must be base64');
    const bytes = Buffer.from(content, 'base64').length;
    if (bytes > MAX_FILE) throw invalidParams(`content is ${bytes} bytes; at most ${MAX_FILE} (64 KiB)`);
    if (!MODE.test(mode)) throw invalidParams(`mode must be an octal string such as "0644" (got ${JSON.stringify(mode.slice(0, 10))})`);
    return this.record(p, vmId, 'writeFile', { path, content, mode: mode.padStart(4, '0') });
  }
}
