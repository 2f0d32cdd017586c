import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { before, it } from 'node:test';
import { Fault } from '../../src/core/errors.js';
import { sha512Crypt } from '../../src/core/sha512-crypt.js';
import { guestConfig } from '../../src/services/guest-config.js';
import { Init } from '../../src/services/init.js';
import type { Principal } from '../../src/services/principal.js';
import { WriteWhitelist, DEFAULT_WRITE_WHITELIST } from '../../src/services/write-whitelist.js';
import { forEachDb, newTenant } from '../helpers/db.js';
import { fault, registerDeadHosts } from './fixtures.js';

const sshString = (b: Buffer | string) => { const v = Buffer.from(b); const n = Buffer.alloc(4); n.writeUInt32BE(v.length); return Buffer.concat([n, v]); };
const keyLine = (type: string, ...fields: Buffer[]) => `${type} ${Buffer.concat([sshString(type), ...fields.map(sshString)]).toString('base64')}`;

function ed25519(comment = 'me@host'): string {
  const x = Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x!, 'base64url');
  return `${keyLine('ssh-ed25519', x)} ${comment}`;
}
function rsa(): string {
  const j = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
  // An mpint has a leading zero byte when its top bit is set.
  const mpint = (b64: string) => { const v = Buffer.from(b64, 'base64url'); return v[0] & 0x80 ? Buffer.concat([Buffer.alloc(1), v]) : v; };
  return keyLine('ssh-rsa', mpint(j.e!), mpint(j.n!));
}
function ecdsa(): string {
  const j = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  const q = Buffer.concat([Buffer.from([4]), Buffer.from(j.x!, 'base64url'), Buffer.from(j.y!, 'base64url')]);
  return keyLine('ecdsa-sha2-nistp256', Buffer.from('nistp256'), q);
}

const PASSWORD = 'Pl4in-T3xt, never stored!';

forEachDb('init methods', (env) => {
  let t: Principal, other: Principal;
  let vm = '';
  let init: Init;

  const generations = (vmId = vm) => env.db.k.selectFrom('vm_config_generations').selectAll().where('vm_id', '=', vmId).orderBy('generation').execute();
  const requestRows = (vmId = vm) => env.db.k.selectFrom('requests').selectAll().where('resource_id', '=', vmId).orderBy('seq').execute();

  before(async () => {
    const s = env.services;
    t = await newTenant(s, 'init');
    other = await newTenant(s, 'nosy');
    await registerDeadHosts(s, 'zone-a', [{ name: 'h1' }]);
    vm = await s.vms.allocate(t, { type: 'be.small' });
    await s.networks.attach(t, vm, await s.networks.allocate(t, {}));
    // Constructed here: services/index.ts is the controller's to wire.
    init = new Init(env.db, s.vms, s.requests, new WriteWhitelist(DEFAULT_WRITE_WHITELIST));
  });

  it('malformed input, unknown VMs and NICs: documented faults, and nothing recorded', async () => {
    const truncated = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGt0 me@host';
    const mislabelled = ed25519().replace(/^ssh-ed25519/, 'ssh-rsa');
    // Thunks, called one at a time: a rejection must not sit unawaited while an earlier case runs.
    const cases: [() => Promise<unknown>, number, RegExp?][] = [
      [() => init.ipAddress(t, vm, 0, '10.0.0.5'), Fault.INVALID_PARAMS, /ip\/prefix/],
      [() => init.ipAddress(t, vm, 0, '10.0.0.5/33'), Fault.INVALID_PARAMS],
      [() => init.ipAddress(t, vm, 0, '10.0.0.256/20', true), Fault.INVALID_PARAMS],
      [() => init.ipAddress(t, 'vm-000000000000', 0, '10.0.0.5/20'), Fault.NOT_FOUND],
      [() => init.ipAddress(other, vm, 0, '10.0.0.5/20'), Fault.NOT_FOUND],
      [() => init.ipAddress(t, vm, 7, '10.0.0.5/20'), Fault.NOT_FOUND, /NIC/],
      [() => init.network(t, vm, { gateway: '10.0.0.300' }), Fault.INVALID_PARAMS],
      [() => init.network(t, vm, { dns: ['8.8.8'] }), Fault.INVALID_PARAMS],
      [() => init.network(t, vm, { hostname: '-bad-' }), Fault.INVALID_PARAMS],
      [() => init.password(t, vm, 'Root!', PASSWORD), Fault.INVALID_PARAMS, /user/],
      [() => init.password(t, vm, 'root', ''), Fault.INVALID_PARAMS],
      [() => init.password(t, vm, 'root', 'a\0b'), Fault.INVALID_PARAMS, /NUL/],
      [() => init.password(other, vm, 'root', PASSWORD), Fault.NOT_FOUND],
      [() => init.sshKey(t, vm, 'root', 'not a key'), Fault.INVALID_PARAMS, /OpenSSH public key/],
      [() => init.sshKey(t, vm, 'root', truncated), Fault.INVALID_PARAMS, /OpenSSH public key/],
      [() => init.sshKey(t, vm, 'root', mislabelled), Fault.INVALID_PARAMS, /OpenSSH public key/],
      [() => init.sshKey(t, vm, 'root', `${ed25519()}\nssh-ed25519 AAAA`), Fault.INVALID_PARAMS],
      [() => init.sshKey(t, vm, 'root', keyLine('ssh-ed25519', Buffer.alloc(31))), Fault.INVALID_PARAMS],
      [() => init.iptables(t, vm, 'x'.repeat(256 * 1024 + 1)), Fault.INVALID_PARAMS],
      [() => init.sshdConfig(t, vm, 'Port 22\0'), Fault.INVALID_PARAMS],
      [() => init.sshdConfig(other, vm, 'Port 22\n'), Fault.NOT_FOUND],
      [() => init.writeFile(t, vm, 'etc/motd', 'aGk='), Fault.INVALID_PARAMS, /not an absolute/],
      [() => init.writeFile(t, vm, '/etc/../etc/shadow', 'aGk='), Fault.INVALID_PARAMS, /not normalized/],
      [() => init.writeFile(t, vm, '/etc/shadow', 'aGk='), Fault.INVALID_PARAMS, /"\/etc\/shadow" is not on the operator's writeFile whitelist/],
      [() => init.writeFile(t, vm, '/etc/motd', 'not base64!'), Fault.INVALID_PARAMS, /base64/],
      [() => init.writeFile(t, vm, '/etc/motd', Buffer.alloc(65537).toString('base64')), Fault.INVALID_PARAMS, /65537 bytes/],
      [() => init.writeFile(t, vm, '/etc/motd', 'aGk=', '4755'), Fault.INVALID_PARAMS, /mode/],
      [() => init.writeFile(t, vm, '/etc/motd', 'aGk=', '0999'), Fault.INVALID_PARAMS, /mode/],
    ];
    for (const [call, code, msg] of cases) await fault(call(), code, msg);
    assert.deepEqual(await generations(), []);
    assert.deepEqual(await requestRows(), []);
  });

  it('each method records the next generation and queues a request of its name holding only that number', async () => {
    const key = ed25519();
    const calls: [string, () => Promise<string>][] = [
      ['setIpAddress', () => init.ipAddress(t, vm, 0, '10.0.0.5/20')],
      ['setNetwork', () => init.network(t, vm, { gateway: '10.0.0.1', dns: ['10.0.0.2'], hostname: 'web1' })],
      ['setPassword', () => init.password(t, vm, 'root', PASSWORD)],
      ['setSshKey', () => init.sshKey(t, vm, 'root', `  ${key}\n`)],
      ['setIptables', () => init.iptables(t, vm, '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n')],
      ['setSshdConfig', () => init.sshdConfig(t, vm, 'PasswordAuthentication no\n')],
      ['writeFile', () => init.writeFile(t, vm, '/etc/motd', Buffer.from('hello\n').toString('base64'))],
      ['unsetIpAddress', () => init.ipAddress(t, vm, 0, '10.0.0.5/20', true)],
    ];
    const ids: string[] = [];
    for (const [, call] of calls) ids.push(await call());
    const gens = await generations();
    const reqs = await requestRows();
    assert.deepEqual(gens.map((g) => [g.generation, g.kind, g.status, g.request_id]), calls.map(([m], i) => [i + 1, m, 'pending', ids[i]]));
    assert.deepEqual(reqs.map((r) => [r.id, r.method, r.status, JSON.parse(r.params)]), calls.map(([m], i) => [ids[i], m, 'queued', { generation: i + 1 }]));
    assert.equal((await env.db.k.selectFrom('vm_config_current').selectAll().where('vm_id', '=', vm).executeTakeFirstOrThrow()).generation, 8);
    assert.equal(JSON.parse(gens[3].payload).publicKey, key, 'the key is stored trimmed');
    assert.deepEqual(JSON.parse(gens[6].payload), { path: '/etc/motd', content: 'aGVsbG8K', mode: '0644' });
    // Other key types, and a mode given in three digits.
    await init.sshKey(t, vm, 'alice', ecdsa());
    await init.sshKey(t, vm, 'alice', rsa());
    await init.writeFile(t, vm, '/home/alice/.ssh/authorized_keys', '', '600');
    assert.equal(JSON.parse((await generations()).at(-1)!.payload).mode, '0600');
  });

  it('the password is stored only as its SHA-512 crypt hash: no table of the store holds it', async () => {
    const gen = (await generations()).find((g) => g.kind === 'setPassword')!;
    const { passwordHash } = JSON.parse(gen.payload);
    const salt = /^\$6\$([^$]{16})\$/.exec(passwordHash)![1];
    assert.equal(sha512Crypt(PASSWORD, salt), passwordHash);
    let scanned = 0;
    for (const table of await env.db.k.introspection.getTables()) {
      for (const row of await (env.db.k as any).selectFrom(table.name).selectAll().execute()) {
        scanned++;
        assert.ok(!JSON.stringify(row).includes(PASSWORD), `${table.name} holds the password`);
      }
    }
    assert.ok(scanned > 10);
  });

  it('guestConfig: the VM\'s generations folded; a VM never configured is generation 0', async () => {
    const c = await guestConfig(env.db, vm);
    assert.equal(c.generation, 11);
    assert.deepEqual(c.nics, [{ slot: 0, addresses: [] }]);
    assert.deepEqual([c.gateway, c.dns, c.hostname], ['10.0.0.1', ['10.0.0.2'], 'web1']);
    assert.deepEqual(c.users.map((u) => [u.name, u.sshKeys.length, u.passwordHash?.startsWith('$6$') ?? false]), [['root', 1, true], ['alice', 2, false]]);
    assert.equal(c.iptables, '*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n');
    assert.equal(c.sshdConfig, 'PasswordAuthentication no\n');
    assert.deepEqual(c.files.map((f) => f.path), ['/etc/motd', '/home/alice/.ssh/authorized_keys']);
    const fresh = await env.services.vms.allocate(t, { type: 'be.small' });
    assert.deepEqual(await guestConfig(env.db, fresh), { generation: 0, nics: [], users: [], files: [] });
  });

  it('concurrent calls on one VM get distinct, consecutive generations', async () => {
    const v = await env.services.vms.allocate(t, { type: 'be.small' });
    await Promise.all(Array.from({ length: 6 }, (_, i) => init.network(t, v, { hostname: `h${i}` })));
    assert.deepEqual((await generations(v)).map((g) => g.generation), [1, 2, 3, 4, 5, 6]);
  });

  it('deallocateVm takes the VM\'s configuration with it', async () => {
    const v = await env.services.vms.allocate(t, { type: 'be.small' });
    await init.sshdConfig(t, v, 'Port 22\n');
    // What the lead's handler does for a stopped VM; until then the queued request would hold the VM.
    await env.db.k.updateTable('requests').set({ status: 'succeeded' }).where('resource_id', '=', v).execute();
    await env.services.vms.deallocate(t, v);
    assert.deepEqual(await generations(v), []);
    assert.equal(await env.db.k.selectFrom('vm_config_current').select('vm_id').where('vm_id', '=', v).executeTakeFirst(), undefined);
  });
});
