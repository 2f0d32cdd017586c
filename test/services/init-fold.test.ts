import assert from 'node:assert/strict';
import { test } from 'node:test';
import { foldGenerations, type Generation } from '../../src/services/guest-config.js';

const gens = (...g: Omit<Generation, 'generation'>[]) => g.map((x, i) => ({ ...x, generation: i + 1 }) as Generation);

test('nothing recorded: generation 0 and an empty configuration', () => {
  assert.deepEqual(foldGenerations([]), { generation: 0, nics: [], users: [], files: [] });
});

test('addresses accumulate per slot, unset removes one, repeats count once', () => {
  const c = foldGenerations(gens(
    { kind: 'setIpAddress', payload: { slot: 1, address: '10.1.0.5/24' } },
    { kind: 'setIpAddress', payload: { slot: 0, address: '10.0.0.5/20' } },
    { kind: 'setIpAddress', payload: { slot: 0, address: '10.0.0.6/20' } },
    { kind: 'setIpAddress', payload: { slot: 0, address: '10.0.0.5/20' } },
    { kind: 'unsetIpAddress', payload: { slot: 1, address: '10.1.0.5/24' } },
    { kind: 'unsetIpAddress', payload: { slot: 3, address: '10.3.0.5/24' } },
  ));
  assert.deepEqual(c.nics, [{ slot: 0, addresses: ['10.0.0.6/20', '10.0.0.5/20'] }, { slot: 1, addresses: [] }, { slot: 3, addresses: [] }]);
  assert.equal(c.generation, 6);
});

test('network fields, passwords, iptables, sshd_config and files: the latest wins, per field, user or path', () => {
  const c = foldGenerations(gens(
    { kind: 'setNetwork', payload: { gateway: '10.0.0.1', dns: ['10.0.0.2'], hostname: 'a' } },
    { kind: 'setNetwork', payload: { hostname: 'b' } },
    { kind: 'setPassword', payload: { user: 'root', passwordHash: '$6$x$1' } },
    { kind: 'setSshKey', payload: { user: 'root', publicKey: 'ssh-ed25519 K1' } },
    { kind: 'setSshKey', payload: { user: 'alice', publicKey: 'ssh-ed25519 K2' } },
    { kind: 'setSshKey', payload: { user: 'root', publicKey: 'ssh-ed25519 K3' } },
    { kind: 'setSshKey', payload: { user: 'root', publicKey: 'ssh-ed25519 K1' } },
    { kind: 'setPassword', payload: { user: 'root', passwordHash: '$6$x$2' } },
    { kind: 'setIptables', payload: { rules: '*filter\nA\nCOMMIT\n' } },
    { kind: 'setIptables', payload: { rules: '*filter\nB\nCOMMIT\n' } },
    { kind: 'setSshdConfig', payload: { text: 'PermitRootLogin no\n' } },
    { kind: 'writeFile', payload: { path: '/etc/motd', content: 'aGk=', mode: '0644' } },
    { kind: 'writeFile', payload: { path: '/etc/hosts', content: 'eA==', mode: '0644' } },
    { kind: 'writeFile', payload: { path: '/etc/motd', content: 'aG8=', mode: '0600' } },
  ));
  assert.equal(c.gateway, '10.0.0.1');
  assert.deepEqual(c.dns, ['10.0.0.2']);
  assert.equal(c.hostname, 'b');
  assert.deepEqual(c.users, [
    { name: 'root', sshKeys: ['ssh-ed25519 K1', 'ssh-ed25519 K3'], passwordHash: '$6$x$2' },
    { name: 'alice', sshKeys: ['ssh-ed25519 K2'] },
  ]);
  assert.equal(c.iptables, '*filter\nB\nCOMMIT\n');
  assert.equal(c.sshdConfig, 'PermitRootLogin no\n');
  // In the order last written, so the guest writes them as the API calls came.
  assert.deepEqual(c.files, [{ path: '/etc/hosts', content: 'eA==', mode: '0644' }, { path: '/etc/motd', content: 'aG8=', mode: '0600' }]);
  assert.equal(c.generation, 14);
});
