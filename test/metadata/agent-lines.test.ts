import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { agentLines, maskPrefix, parseAgentLines } from '../../src/metadata/agent-lines.js';
import type { KumoGuestConfig, VmMetadata } from '../../src/metadata/types.js';
import { get, serve, vmA, type Served } from './fixtures.js';

const KEYS = ['generation', 'hostname', 'nic', 'route', 'dns', 'user', 'key', 'sshd', 'iptables', 'file', 'end'];
/** A line: a known key, then words of printable ASCII other than blank, no quote, backquote or backslash. */
const LINE = new RegExp(`^(?:${KEYS.join('|')})(?: [A-Za-z0-9./:$=+,*!_-]+)*$`);

test('the documented example', () => {
  const md = vmA({
    publicKeys: [{ name: 'k', key: 'ssh-ed25519 AAAA root@x' }],
    vendorData: {
      kumo: {
        hostname: 'db-2',
        gateway: '10.1.0.254',
        dns: ['1.1.1.1', '8.8.8.8'],
        users: [{ name: 'alice', passwordHash: '$6$s$h', sshKeys: ['ssh-rsa BBBB a@b'] }],
        sshdConfig: 'PermitRootLogin no\n',
        iptables: '*filter\nCOMMIT\n',
        files: [{ path: '/etc/motd', content: Buffer.from('hi\n').toString('base64'), mode: '0644' }],
      },
    },
  });
  const b = (s: string) => Buffer.from(s).toString('base64');
  assert.equal(agentLines(md), [
    'generation 3',
    'hostname db-2',
    'nic 52:54:00:aa:00:01 10.1.0.5/24',
    'route 0.0.0.0/0 10.1.0.254',
    'dns 1.1.1.1 8.8.8.8',
    'user root -',
    'user alice $6$s$h',
    `key root ${b('ssh-ed25519 AAAA root@x')}`,
    `key alice ${b('ssh-rsa BBBB a@b')}`,
    `sshd ${b('PermitRootLogin no\n')}`,
    `iptables ${b('*filter\nCOMMIT\n')}`,
    `file 0644 ${b('/etc/motd')} ${b('hi\n')}`,
    'end',
  ].join('\n') + '\n');
});

test('defaults: md.hostname, network routes and DNS services; invalid values are left out', () => {
  const text = agentLines(vmA({ hostname: 'bad host;rm -rf /', publicKeys: [{ name: 'x', key: 'a\nb' }] }));
  assert.equal(text, 'generation 3\nnic 52:54:00:aa:00:01 10.1.0.5/24\nroute 0.0.0.0/0 10.1.0.1\ndns 10.1.0.2\nuser root -\nsshd UGVybWl0Um9vdExvZ2luIG5v\nend\n');
  assert.equal(maskPrefix('255.255.255.0'), 24);
  assert.equal(maskPrefix('0.0.0.0'), 0);
  assert.equal(maskPrefix('255.0.255.0'), null);
});

/** Strings a tenant might use to break out: line breaks, blanks, shell syntax, NULs, anything. */
const evil = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.array(fc.constantFrom('\n', '\r', ' ', '\t', '\0', '$(', '`', '"', "'", '\\', ';', '|', '-', '/', '..', 'end', 'key root x', 'a', '0', '.', ':'), { maxLength: 12 }).map((a) => a.join('')),
);
const validName = fc.stringMatching(/^[a-z_][a-z0-9_-]{0,8}$/);
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const kumo: fc.Arbitrary<KumoGuestConfig> = fc.record({
  users: fc.array(fc.record({
    name: fc.oneof(validName, evil),
    passwordHash: maybe(fc.oneof(fc.constant('$6$salt$abc./XYZ'), evil)),
    sshKeys: fc.array(fc.oneof(fc.constant('ssh-ed25519 AAAA c'), evil), { maxLength: 3 }),
  }), { maxLength: 3 }),
  iptables: maybe(evil),
  sshdConfig: maybe(evil),
  files: fc.array(fc.record({
    path: fc.oneof(evil.map((s) => `/etc/${s}`), evil),
    content: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString('base64')),
    mode: fc.oneof(fc.constantFrom('0644', '0600', '755'), evil),
  }), { maxLength: 3 }),
  dns: maybe(fc.array(fc.oneof(ipv4, evil), { maxLength: 3 })),
  gateway: maybe(fc.oneof(ipv4, evil)),
  hostname: maybe(fc.oneof(fc.constant('ok-name.example'), evil)),
}, { requiredKeys: ['users', 'files'] });

const metadata: fc.Arbitrary<VmMetadata> = fc.record({
  kumo,
  hostname: evil,
  keys: fc.array(evil, { maxLength: 3 }),
  address: fc.oneof(ipv4, evil),
  netmask: fc.oneof(fc.constantFrom('255.255.255.0', '255.255.0.0'), evil),
  mac: fc.oneof(fc.constant('52:54:00:AB:CD:EF'), evil),
  generation: fc.nat(),
}).map((r) => vmA({
  hostname: r.hostname,
  generation: r.generation,
  publicKeys: r.keys.map((key, i) => ({ name: `k${i}`, key })),
  vendorData: { kumo: r.kumo },
  network: {
    links: [{ id: 'l0', mac: r.mac }],
    networks: [{ id: 'n0', link: 'l0', type: 'ipv4', ipAddress: r.address, netmask: r.netmask, routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: r.address }] }],
    services: [],
  },
}));

/** What survives the encoding: a string as UTF-8 would carry it. */
const utf8 = (s: string) => Buffer.from(s, 'utf8').toString('utf8');

test('a tenant gateway on none of the guest\'s subnets is left out (it could not be applied), one on a subnet replaces the default', () => {
  const routes = (gateway: string) => parseAgentLines(agentLines(vmA({ vendorData: { kumo: { users: [], files: [], gateway } } }))).routes;
  assert.deepEqual(routes('192.168.9.1'), [{ dest: '0.0.0.0/0', gateway: '10.1.0.1' }]);
  assert.deepEqual(routes('10.1.0.254'), [{ dest: '0.0.0.0/0', gateway: '10.1.0.254' }]);
});

test('property: nothing a tenant sets adds a line or breaks a record; the guest reads back what was set', () => {
  fc.assert(fc.property(metadata, (md) => {
    const text = agentLines(md);
    const lines = text.slice(0, -1).split('\n');
    for (const l of lines) assert.match(l, LINE);
    const p = parseAgentLines(text);
    const k = md.vendorData.kumo!;
    assert.equal(p.generation, md.generation);

    // One record per input item that passed validation, no more.
    const users = new Set(['root', ...k.users.map((u) => u.name).filter((n) => /^[a-z_][a-z0-9_-]{0,31}$/.test(n))]);
    assert.deepEqual(p.users.map((u) => u.name), [...users]);
    for (const name of users) {
      const given = name === 'root' ? md.publicKeys.map((x) => x.key) : [];
      for (const u of k.users) if (u.name === name) given.push(...u.sshKeys);
      const expect = [...new Set(given)].filter((x) => x.trim() !== '' && !/[\r\n]/.test(x)).map(utf8);
      assert.deepEqual(p.keys.filter((x) => x.user === name).map((x) => x.key), expect);
      const hash = k.users.filter((u) => u.name === name).map((u) => u.passwordHash).filter((h) => h !== undefined && h !== '-' && /^[A-Za-z0-9./$=+,*!-]{1,512}$/.test(h)).at(-1);
      assert.equal(p.users.find((u) => u.name === name)!.hash, hash ?? null);
    }
    assert.equal(p.sshd, k.sshdConfig === undefined ? null : utf8(k.sshdConfig));
    assert.equal(p.iptables, k.iptables === undefined ? null : utf8(k.iptables));
    const files = k.files.filter((f) => /^0?[0-7]{3,4}$/.test(f.mode) && f.path.startsWith('/') && !/[\0\r\n]/.test(f.path) && !f.path.split('/').includes('..'));
    assert.deepEqual(p.files.map((f) => ({ ...f, content: f.content.toString('base64') })), files.map((f) => ({ mode: f.mode, path: utf8(f.path), content: f.content })));
    const host = k.hostname !== undefined && k.hostname !== '' ? k.hostname : md.hostname;
    if (p.hostname !== null) assert.equal(p.hostname, host);
    if (/^[a-z0-9]{1,60}$/.test(host)) assert.equal(p.hostname, host);
    assert.equal(p.nics.length, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(md.network.links[0].mac.toLowerCase()) ? 1 : 0);
  }), { numRuns: 500 });
});

test('the parser refuses what the guest would refuse', () => {
  for (const bad of ['generation 1\nuser root -\n', 'user root -\nend\n', 'generation 1\nfoo bar\nend\n', 'generation 1\nkey root QUJD\nend\n',
    'generation 1\nsshd a b\nend\n', 'generation 1\nsshd Q!\nend\n', 'generation 1\nend', 'generation 1\nuser root a:b\nend\n', 'generation 1\nnic 52:54:00:aa:00:01 1.2.3.4\nend\n']) {
    assert.throws(() => parseAgentLines(bad), Error, JSON.stringify(bad));
  }
});

let s: Served;
before(async () => { s = await serve([vmA()]); });
after(() => s.close());

test('the responder serves lines with format=lines, with the same long-poll semantics; JSON stays the default', async () => {
  const p = s.port[vmA().vmId];
  const r = await get(p, '/kumo/v1/config?format=lines');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain/);
  assert.equal(r.body.toString(), agentLines(vmA()));
  assert.match(String((await get(p, '/kumo/v1/config')).headers['content-type']), /^application\/json/);
  assert.equal((await get(p, '/kumo/v1/config?format=xml')).status, 400);
  assert.equal((await get(p, '/kumo/v1/config?after=3&wait=0&format=lines')).status, 304);
  const waiting = get(p, '/kumo/v1/config?after=3&wait=30&format=lines');
  await new Promise((ok) => setTimeout(ok, 50));
  s.vms.set(vmA().vmId, vmA({ generation: 4 }));
  s.responder.notify(vmA().vmId);
  const w = await waiting;
  assert.equal(w.status, 200);
  assert.match(w.body.toString(), /^generation 4\n/);
});
