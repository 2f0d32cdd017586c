/**
 * cloud-init's own readers (its OpenStack MetadataReader, EC2 crawler and network_data converter)
 * against the handler, when the host has cloud-init's Python package to borrow them from.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { serve, vmA, type Served } from './fixtures.js';

const script = String.raw`
import json, sys
from cloudinit import sources
from cloudinit.sources.helpers import ec2, openstack
base = sys.argv[1]
reader = openstack.MetadataReader(base, retries=0, timeout=5)
res = reader.read_v2()
md = res['metadata']
print(json.dumps({
    'version': reader._find_working_version(),
    'instance_id': md['instance-id'],
    'hostname': md['local-hostname'],
    'keys': sources.normalize_pubkey_data(md.get('public_keys')),
    'userdata': res['userdata'].decode(),
    'vendordata': sources.convert_vendordata(res.get('vendordata')),
    'vendordata2': sources.convert_vendordata(res.get('vendordata2')),
    'net': openstack.convert_net_json(res['networkdata'], known_macs={'52:54:00:aa:00:01': 'ens3'}),
    'ec2': ec2.get_instance_metadata('latest', base, retries=0, timeout=5),
}))
`;

function hasCloudInit(): boolean {
  try {
    execFileSync('python3', ['-c', 'import cloudinit.sources.helpers.openstack'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let s: Served;
const vendor = '#cloud-config\npackages: [htop]\n';
before(async () => { s = await serve([vmA({ vendorData: { 'cloud-init': vendor, kumo: { users: [], files: [], hostname: 'x1' } } })]); });
after(() => s.close());

test('cloud-init reads kumo as an OpenStack metadata service', { skip: hasCloudInit() ? false : 'cloud-init is not installed (Debian package cloud-init)' }, async () => {
  const { stdout } = await promisify(execFile)('python3', ['-c', script, `http://127.0.0.1:${s.port[vmA().vmId]}`]);
  const out = JSON.parse(stdout);
  assert.equal(out.version, '2018-08-27');
  assert.equal(out.instance_id, vmA().vmId);
  assert.equal(out.hostname, vmA().hostname);
  assert.deepEqual(out.keys, vmA().publicKeys.map((k) => k.key));
  assert.equal(out.userdata, vmA().userData!.toString());
  assert.equal(out.vendordata, vendor);
  assert.equal(out.vendordata2, null, 'kumo entries in vendor_data2.json are not applied by cloud-init');
  assert.deepEqual(out.net.config[0], {
    type: 'physical', name: 'ens3', mac_address: '52:54:00:aa:00:01', mtu: 1450,
    subnets: [{ type: 'static', address: '10.1.0.5', netmask: '255.255.255.0', ipv4: true,
      routes: [{ network: '0.0.0.0', netmask: '0.0.0.0', gateway: '10.1.0.1' }] }],
  });
  assert.deepEqual(out.net.config[1], { type: 'nameserver', address: '10.1.0.2' });
  assert.equal(out.ec2['instance-id'], vmA().vmId);
  assert.deepEqual(out.ec2['public-keys'], Object.fromEntries(vmA().publicKeys.map((k) => [k.name, k.key])));
  assert.equal(out.ec2.placement['availability-zone'], 'tokyo-1');
});
