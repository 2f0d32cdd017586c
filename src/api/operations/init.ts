import { Type } from '@sinclair/typebox';
import { op } from './types.js';
import { RequestIdResult, Strict, Text, VmId } from './schemas.js';
import { nicParams } from './vms.js';

const vm = { name: 'vmId', schema: VmId };
const init = (name: string, path: string, summary: string, params: { name: string; schema: any; optional?: boolean }[], run: (s: any, p: any, a: any) => Promise<unknown>) =>
  op({ name, summary: `${summary} (async; applied by the guest through the metadata service)`, tag: 'Init', params: [vm, ...params], result: RequestIdResult,
    rest: { method: 'POST', path: `/v1/vms/{vmId}/init/${path}`, status: 202, wrap: 'requestId' }, run });

export const initOperations = [
  init('setIpAddress', 'set-ip-address', 'Give a NIC an address', [...nicParams.slice(1), { name: 'address', schema: Text(64) }],
    (s, p, a) => s.init.ipAddress(p, a.vmId, a.slot, a.address)),
  init('unsetIpAddress', 'unset-ip-address', 'Take an address off a NIC', [...nicParams.slice(1), { name: 'address', schema: Text(64) }],
    (s, p, a) => s.init.ipAddress(p, a.vmId, a.slot, a.address, true)),
  init('setNetwork', 'network', 'Set gateway, DNS servers and hostname',
    [{ name: 'network', schema: Strict({ gateway: Type.Optional(Text(64)), dns: Type.Optional(Type.Array(Text(64), { maxItems: 8 })), hostname: Type.Optional(Text(253)) }) }],
    (s, p, a) => s.init.network(p, a.vmId, a.network)),
  init('setPassword', 'password', 'Set a user\'s password (stored only as a SHA-512 crypt hash)', [{ name: 'user', schema: Text(32) }, { name: 'password', schema: Text(1024) }],
    (s, p, a) => s.init.password(p, a.vmId, a.user, a.password)),
  init('setSshKey', 'ssh-key', 'Authorize an SSH public key for a user', [{ name: 'user', schema: Text(32) }, { name: 'publicKey', schema: Text(16384) }],
    (s, p, a) => s.init.sshKey(p, a.vmId, a.user, a.publicKey)),
  init('setIptables', 'iptables', 'Set firewall rules (iptables-save text)', [{ name: 'rules', schema: Text(262144) }], (s, p, a) => s.init.iptables(p, a.vmId, a.rules)),
  init('setSshdConfig', 'sshd-config', 'Set the sshd configuration', [{ name: 'text', schema: Text(65536) }], (s, p, a) => s.init.sshdConfig(p, a.vmId, a.text)),
  // 64 KiB of content is 87,384 base64 characters.
  init('writeFile', 'file', 'Write a file (at most 64 KiB, base64) on the operator\'s whitelist',
    [{ name: 'path', schema: Text(4096) }, { name: 'content', schema: Text(87384) }, { name: 'mode', schema: Text(5), optional: true }],
    (s, p, a) => s.init.writeFile(p, a.vmId, a.path, a.content, a.mode)),
];
