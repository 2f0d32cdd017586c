import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { it } from 'node:test';
import { foldGenerations, type Generation } from '../../src/services/guest-config.js';
import { cloudConfig, defaultHostname, guestNetwork } from '../../src/services/guest-metadata.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b';
const gens: Generation[] = [
  { generation: 1, kind: 'setPassword', payload: { user: 'root', passwordHash: '$6$s$root' } },
  { generation: 2, kind: 'setSshKey', payload: { user: 'alice', publicKey: KEY } },
  { generation: 3, kind: 'setPassword', payload: { user: 'alice', passwordHash: '$6$s$alice' } },
  { generation: 4, kind: 'writeFile', payload: { path: '/etc/motd', content: Buffer.from('hi\n').toString('base64'), mode: '0600' } },
  { generation: 5, kind: 'setSshdConfig', payload: { text: 'PermitRootLogin no\n' } },
  { generation: 6, kind: 'setIpAddress', payload: { slot: 1, address: '10.0.0.5/24' } },
  { generation: 7, kind: 'setNetwork', payload: { gateway: '10.0.0.1', dns: ['10.0.0.2'] } },
];

it('cloud-config vendor data: users, root password, files; parsed by PyYAML as cloud-init would', () => {
  const text = cloudConfig(foldGenerations(gens))!;
  assert.ok(text.startsWith('#cloud-config\n'));
  const parsed = JSON.parse(execFileSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], { input: text, encoding: 'utf8' }));
  assert.deepEqual(parsed, {
    users: ['default', { name: 'alice', shell: '/bin/bash', ssh_authorized_keys: [KEY] }],
    chpasswd: { expire: false, users: [{ name: 'root', password: '$6$s$root', type: 'hash' }, { name: 'alice', password: '$6$s$alice', type: 'hash' }] },
    write_files: [
      { path: '/etc/motd', content: Buffer.from('hi\n').toString('base64'), encoding: 'b64', permissions: '0600' },
      { path: '/etc/ssh/sshd_config', content: 'PermitRootLogin no\n', permissions: '0644' },
    ],
  });
  assert.equal(cloudConfig(foldGenerations([])), null);
});

it('network: DHCP on the first NIC for the metadata link, static addresses per NIC, the gateway where it is on-subnet', () => {
  const cfg = foldGenerations(gens);
  const net = guestNetwork([
    { slot: 0, mac: '52:54:00:00:00:01', cidr: '10.9.0.0/20', ip: null },
    { slot: 1, mac: '52:54:00:00:00:02', cidr: '10.0.0.0/24', ip: null },
  ], cfg);
  assert.deepEqual(net.links, [{ id: 'nic0', mac: '52:54:00:00:00:01' }, { id: 'nic1', mac: '52:54:00:00:00:02' }]);
  assert.deepEqual(net.networks, [
    { id: 'nic0-dhcp', link: 'nic0', type: 'ipv4_dhcp', routes: [] },
    { id: 'nic1-0', link: 'nic1', type: 'ipv4', ipAddress: '10.0.0.5', netmask: '255.255.255.0', routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.0.0.1' }] },
  ]);
  assert.deepEqual(net.services, [{ type: 'dns', address: '10.0.0.2' }]);
  assert.equal(defaultHostname('Web Server #1'), 'web-server-1');
  assert.equal(defaultHostname('---'), 'vm');
});
