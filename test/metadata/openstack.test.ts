import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metaDataJson, networkDataJson, OPENSTACK_VERSIONS, openstackPath } from '../../src/metadata/openstack.js';
import type { Reply } from '../../src/metadata/reply.js';
import { vmA, vmB } from './fixtures.js';

const body = (r: Reply | null): string => String(r?.body);
const doc = (r: Reply | null): Record<string, unknown> => {
  assert.equal(r?.type, 'application/json');
  return JSON.parse(body(r)) as Record<string, unknown>;
};

test('/openstack lists every version cloud-init knows, newest dated last, then latest', () => {
  const r = openstackPath(vmA(), []);
  assert.match(String(r?.type), /^text\/plain/);
  assert.deepEqual(body(r).split('\n'), [...OPENSTACK_VERSIONS, 'latest']);
  assert.ok(OPENSTACK_VERSIONS.includes('2018-08-27') && OPENSTACK_VERSIONS.includes('2012-08-10'));
});

test('meta_data.json carries what cloud-init reads: uuid (its instance-id), hostname, public_keys as a name→key map', () => {
  const md = doc(openstackPath(vmA(), ['latest', 'meta_data.json']));
  assert.equal(md.uuid, vmA().vmId);
  assert.equal(md.name, 'web-1');
  assert.equal(md.hostname, 'web-1.tenant-a.kumo');
  assert.equal(md.availability_zone, 'tokyo-1');
  assert.equal(md.project_id, 'tenant-a');
  assert.equal(md.launch_index, 0);
  assert.deepEqual(md.devices, []);
  assert.deepEqual(md.meta, { role: 'web' });
  assert.deepEqual(md.public_keys, {
    alice: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop',
    ci: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICi ci@build',
  });
  assert.deepEqual((md.keys as unknown[])[0], { name: 'alice', type: 'ssh', data: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop' });
});

test('older versions get the fields and files their Nova release had', () => {
  const folsom = metaDataJson(vmA(), '2012-08-10');
  assert.equal(folsom.project_id, undefined);
  assert.equal(folsom.devices, undefined);
  assert.equal(metaDataJson(vmA(), '2015-10-15').project_id, 'tenant-a');
  assert.deepEqual(body(openstackPath(vmA(), ['2012-08-10'])).split('\n'), ['meta_data.json', 'user_data']);
  assert.equal(openstackPath(vmA(), ['2013-04-04', 'vendor_data.json']), null);
  assert.equal(openstackPath(vmA(), ['2015-10-15', 'vendor_data2.json']), null);
  assert.ok(openstackPath(vmA(), ['2015-10-15', 'network_data.json']));
  assert.deepEqual(body(openstackPath(vmA(), ['latest'])).split('\n'),
    ['meta_data.json', 'user_data', 'vendor_data.json', 'network_data.json', 'vendor_data2.json']);
});

test('user_data is the raw bytes, and a 404 (null) when the VM has none', () => {
  const bytes = Buffer.from([0x23, 0x21, 0xff, 0x00, 0x0a]);
  const r = openstackPath(vmA({ userData: bytes }), ['latest', 'user_data']);
  assert.equal(r?.type, 'application/octet-stream');
  assert.deepEqual(r?.body, bytes);
  assert.equal(openstackPath(vmA({ userData: null }), ['latest', 'user_data']), null);
  assert.ok(!body(openstackPath(vmA({ userData: null }), ['latest'])).includes('user_data'));
});

test('network_data.json: links by lower-case MAC, static ipv4 with routes, dhcp, dns services', () => {
  assert.deepEqual(doc(openstackPath(vmA(), ['latest', 'network_data.json'])), {
    links: [{ id: 'port-a0', type: 'phy', ethernet_mac_address: '52:54:00:aa:00:01', mtu: 1450 }],
    networks: [{
      id: 'net-a0', type: 'ipv4', link: 'port-a0', network_id: 'net-a0', ip_address: '10.1.0.5', netmask: '255.255.255.0',
      routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.1.0.1' }],
    }],
    services: [{ type: 'dns', address: '10.1.0.2' }],
  });
  assert.deepEqual(networkDataJson(vmB()), {
    links: [{ id: 'port-b0', type: 'phy', ethernet_mac_address: '52:54:00:bb:00:01' }],
    networks: [{ id: 'net-b0', type: 'ipv4_dhcp', link: 'port-b0', network_id: 'net-b0' }],
    services: [],
  });
});

test('vendor_data.json is the vendor data; vendor_data2.json namespaces it under kumo', () => {
  assert.deepEqual(doc(openstackPath(vmA(), ['latest', 'vendor_data.json'])), { kumo: { users: [], files: [], sshdConfig: 'PermitRootLogin no' } });
  assert.deepEqual(doc(openstackPath(vmA(), ['latest', 'vendor_data2.json'])), { kumo: { kumo: { users: [], files: [], sshdConfig: 'PermitRootLogin no' } } });
});

test('unknown versions, files and deeper paths are 404', () => {
  for (const p of [['2099-01-01'], ['latest', 'password'], ['latest', 'meta_data.json', 'x'], ['2012-08-10', 'network_data.json'], ['__proto__']]) {
    assert.equal(openstackPath(vmA(), p), null, p.join('/'));
  }
});
