/**
 * The agent's metadata service over the real link (ip, nftables, dnsmasq), with two VM stand-ins:
 * a veth whose host end is named like a tap and whose other end is `eth0` in a namespace of the
 * test's. The guest side uses clients no one here wrote: busybox udhcpc for the lease, Python's
 * urllib for HTTP. A fake controller (127.0.0.1) serves the metadata the agent fetches and
 * records what guests confirm.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { AgentMetadata } from '../../src/agent/metadata.js';
import { alive } from '../../src/core/proc.js';
import { CONTROLLER_PATHS } from '../../src/agent/protocol.js';
import type { VmMetadata } from '../../src/metadata/types.js';
import { toWire } from '../../src/metadata/wire.js';
import { LinuxMetadataLink } from '../../src/sdn/linux/metadata-link.js';
import { run } from '../../src/sdn/netns.js';
import { vmA, vmB } from '../metadata/fixtures.js';
import { Lab, sh } from '../sdn/netns-helpers.js';

const missing = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : await LinuxMetadataLink.missing();

/** python3 in the guest namespace: GET/POST with headers, optionally from a given source address. */
async function py(ns: string, method: string, path: string, o: { headers?: Record<string, string>; body?: string; source?: string; timeout?: number } = {}) {
  const script = `
import json, sys, urllib.request, http.client
a = json.loads(sys.argv[1])
c = http.client.HTTPConnection('169.254.169.254', 80, timeout=a['timeout'], source_address=(a['source'], 0) if a['source'] else None)
try:
    c.request(a['method'], a['path'], body=a['body'], headers=a['headers'])
    r = c.getresponse()
    print(json.dumps({'status': r.status, 'body': r.read().decode('utf8', 'replace')}))
except Exception as e:
    print(json.dumps({'status': 0, 'body': type(e).__name__}))
`;
  const arg = JSON.stringify({ method, path, headers: o.headers ?? {}, body: o.body ?? null, source: o.source ?? null, timeout: o.timeout ?? 5 });
  const { stdout } = await run('python3', ['-c', script, arg], { netns: ns, timeoutMs: 90_000 });
  return JSON.parse(stdout) as { status: number; body: string };
}

describe('agent metadata service on the metadata link', { skip: missing ?? false }, () => {
  const lab = new Lab();
  const hex = () => randomBytes(6).toString('hex');
  const vms = new Map<string, VmMetadata>();
  const applied: Array<[string, number]> = [];
  let controller: http.Server;
  let dir: string;
  let agent: AgentMetadata;
  const guests: { vmId: string; ns: string; device: string; mac: string }[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kumo-mdlink-'));
    controller = http.createServer((req, res) => {
      const m = /^\/v1\/agent\/vms\/([^/]+)\/(metadata|config-applied)$/.exec(req.url ?? '');
      if (req.headers.authorization !== 'Bearer node-token' || !m) return void res.writeHead(401).end();
      const md = vms.get(m[1]);
      if (!md) return void res.writeHead(404).end('{}');
      if (m[2] === 'metadata') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(toWire(md)));
      let body = '';
      req.on('data', (d) => (body += d)).on('end', () => {
        applied.push([m[1], (JSON.parse(body) as { generation: number }).generation]);
        res.writeHead(200).end('{}');
      });
    });
    await new Promise<void>((r) => controller.listen(0, '127.0.0.1', r));
    assert.equal(CONTROLLER_PATHS.metadata('x'), '/v1/agent/vms/x/metadata');
    agent = new AgentMetadata({
      controllerUrl: `http://127.0.0.1:${(controller.address() as AddressInfo).port}`, token: () => 'node-token',
      link: new LinuxMetadataLink({ dir: join(dir, 'dhcp'), log: pino({ level: 'silent' }) }), dataDir: dir, log: pino({ level: 'silent' }),
    });
    for (const base of [vmA(), vmB()]) {
      const vmId = `vm-${hex()}`;
      const mac = `52:54:00:${hex().slice(0, 6).match(/../g)!.join(':')}`;
      vms.set(vmId, { ...base, vmId, network: { ...base.network, links: [{ id: 'nic0', mac }] } });
      const device = `kt${hex()}0`;
      const ns = await lab.ns(`md${guests.length}`);
      await run('ip', ['link', 'add', device, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await sh(ns, 'ip', 'link', 'set', 'eth0', 'address', mac);
      await sh(ns, 'ip', 'link', 'set', 'eth0', 'up');
      guests.push({ vmId, ns, device, mac });
      await agent.attach(vmId, [{ slot: 0, mac, device }]);
    }
  });

  after(async () => {
    for (const g of guests) {
      await agent.detach(g.vmId).catch(() => {});
      await run('ip', ['link', 'del', g.device]).catch(() => {});
    }
    await agent.close();
    controller.close();
    await lab.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('leases each guest its own link-local address by DHCP (busybox udhcpc)', async () => {
    const script = join(dir, 'udhcpc.sh');
    await writeFile(script, '#!/bin/sh\n[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface"\nexit 0\n', { mode: 0o755 });
    const addresses = new Set<string>();
    for (const g of guests) {
      await run('busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-t', '5', '-T', '1', '-s', script], { netns: g.ns, timeoutMs: 30_000 });
      const [eth0] = JSON.parse((await sh(g.ns, 'ip', '-j', 'addr', 'show', 'eth0'))) as { addr_info: { family: string; local: string; prefixlen: number }[] }[];
      const v4 = eth0.addr_info.find((a) => a.family === 'inet');
      assert.ok(v4 && /^169\.254\./.test(v4.local) && v4.prefixlen === 16, `guest ${g.vmId} got ${JSON.stringify(v4)}`);
      assert.equal((await readFile(join(dir, 'metadata', `${g.vmId}.address`), 'utf8')).trim(), v4.local);
      addresses.add(v4.local);
    }
    assert.equal(addresses.size, guests.length);
  });

  it('answers each guest with its own metadata, whatever it forges', async () => {
    const [a, b] = guests;
    const bAddress = (await readFile(join(dir, 'metadata', `${b.vmId}.address`), 'utf8')).trim();
    for (const g of guests) {
      const r = await py(g.ns, 'GET', '/openstack/latest/meta_data.json');
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).uuid, g.vmId);
      const ec2 = await py(g.ns, 'GET', '/latest/meta-data/instance-id');
      assert.equal(ec2.body, g.vmId);
    }
    // Headers naming B, B's address as a forwarded-for, an absolute URL to B: still A's data.
    const forged = await py(a.ns, 'GET', `http://${bAddress}/openstack/latest/meta_data.json`, {
      headers: { 'X-Forwarded-For': bAddress, 'X-Instance-ID': b.vmId, 'X-Real-IP': bAddress, Host: bAddress },
    });
    assert.equal(JSON.parse(forged.body).uuid, a.vmId);
    // A sending with B's address is dropped on A's tap: no answer at all.
    await sh(a.ns, 'ip', 'addr', 'add', `${bAddress}/32`, 'dev', 'eth0');
    try {
      const spoofed = await py(a.ns, 'GET', '/openstack/latest/meta_data.json', { source: bAddress, timeout: 3 });
      assert.equal(spoofed.status, 0, `a spoofed request got ${JSON.stringify(spoofed).slice(0, 200)}`);
    } finally {
      await sh(a.ns, 'ip', 'addr', 'del', `${bAddress}/32`, 'dev', 'eth0');
    }
    // An IMDSv2 token is A's: B cannot use one A obtained.
    const token = await py(a.ns, 'PUT', '/latest/api/token', { headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } });
    assert.equal(token.status, 200);
    const stolen = await py(b.ns, 'GET', '/latest/meta-data/instance-id', { headers: { 'X-aws-ec2-metadata-token': token.body } });
    assert.equal(stolen.status, 401);
  });

  it('answers a waiting guest when the controller pushes a new generation, and reports its confirmation', async () => {
    const [a] = guests;
    const md = vms.get(a.vmId)!;
    const waiting = py(a.ns, 'GET', `/kumo/v1/config?after=${md.generation}&wait=30`, { timeout: 40 });
    await new Promise((r) => setTimeout(r, 500));
    const next = { ...md, generation: md.generation + 1, hostname: 'renamed' };
    vms.set(a.vmId, next);
    agent.update(a.vmId, toWire(next));
    const got = await waiting;
    assert.equal(got.status, 200);
    assert.equal(JSON.parse(got.body).generation, next.generation);
    assert.equal(JSON.parse(got.body).meta_data.hostname, 'renamed');
    const ok = await py(a.ns, 'POST', '/kumo/v1/applied', { body: JSON.stringify({ generation: next.generation }), headers: { 'content-type': 'application/json' } });
    assert.equal(ok.status, 204);
    assert.deepEqual(applied, [[a.vmId, next.generation]]);
  });

  it('detaching a VM stops its DHCP server and its path to the service', async () => {
    const [a, b] = guests;
    const pidfile = join(dir, 'dhcp', a.vmId, 'dnsmasq.pid');
    const pid = Number((await readFile(pidfile, 'utf8')).trim());
    assert.ok(alive(pid));
    await agent.detach(a.vmId);
    assert.ok(!alive(pid), 'dnsmasq still runs');
    const r = await py(a.ns, 'GET', '/openstack/latest/meta_data.json', { timeout: 3 });
    assert.equal(r.status, 0);
    const still = await py(b.ns, 'GET', '/openstack/latest/meta_data.json');
    assert.equal(JSON.parse(still.body).uuid, b.vmId);
  });
});
