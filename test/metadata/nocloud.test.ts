import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import {
  buildSeedIso, prefixLength, SEED_ISO_PACKAGE, seedFiles, seedIsoToolInstalled, seedMetaData, seedNetworkConfig,
} from '../../src/metadata/nocloud.js';
import { vmA, vmB } from './fixtures.js';

const run = promisify(execFile);

test('netmask to prefix length, refusing non-contiguous masks', () => {
  assert.equal(prefixLength('255.255.255.0'), 24);
  assert.equal(prefixLength('0.0.0.0'), 0);
  assert.equal(prefixLength('255.255.255.255'), 32);
  assert.equal(prefixLength('255.255.240.0'), 20);
  assert.throws(() => prefixLength('255.0.255.0'), /contiguous/);
  assert.throws(() => prefixLength('255.255.256.0'), /bad netmask/);
});

test('meta-data names the instance, hostname and keys', () => {
  assert.deepEqual(JSON.parse(seedMetaData(vmA())), {
    'instance-id': vmA().vmId,
    'local-hostname': 'web-1.tenant-a.kumo',
    'public-keys': vmA().publicKeys.map((k) => k.key),
  });
});

test('network-config v2 matches NICs by MAC: static with routes and DNS, or DHCP', () => {
  assert.deepEqual(JSON.parse(seedNetworkConfig(vmA())), {
    version: 2,
    ethernets: {
      eth0: {
        match: { macaddress: '52:54:00:aa:00:01' }, 'set-name': 'eth0', mtu: 1450,
        addresses: ['10.1.0.5/24'], routes: [{ to: '0.0.0.0/0', via: '10.1.0.1' }], nameservers: { addresses: ['10.1.0.2'] },
      },
    },
  });
  assert.deepEqual(JSON.parse(seedNetworkConfig(vmB())).ethernets.eth0, { match: { macaddress: '52:54:00:bb:00:01' }, 'set-name': 'eth0', dhcp4: true });
});

test('user-data is passed through; vendor-data only from a cloud-init entry', () => {
  assert.deepEqual(seedFiles(vmA())['user-data'], vmA().userData);
  assert.equal(seedFiles(vmA({ userData: null }))['user-data'], '');
  assert.equal(seedFiles(vmA())['vendor-data'], undefined);
  assert.equal(seedFiles(vmA({ vendorData: { 'cloud-init': '#cloud-config\n{}\n' } }))['vendor-data'], '#cloud-config\n{}\n');
});

test('the documents load as YAML the way cloud-init loads them', { skip: pythonYaml() ? false : 'python3-yaml is not installed' }, () => {
  for (const doc of [seedMetaData(vmA()), seedNetworkConfig(vmA())]) {
    const loaded = execFileSync('python3', ['-c', 'import sys, yaml, json; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], { input: doc });
    assert.deepEqual(JSON.parse(loaded.toString()), JSON.parse(doc));
  }
});

test('the seed ISO is labelled cidata and holds the files', {
  skip: seedIsoToolInstalled() ? false : `genisoimage is not installed (Debian package ${SEED_ISO_PACKAGE})`,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-seed-test-'));
  try {
    const iso = join(dir, 'seed.iso');
    await buildSeedIso(vmA(), iso);
    const { stdout: pvd } = await run('isoinfo', ['-d', '-i', iso]);
    assert.match(pvd, /^Volume id: cidata$/m);
    assert.match(pvd, /Rock Ridge/);
    const read = async (name: string): Promise<string> => (await run('isoinfo', ['-R', '-i', iso, '-x', `/${name}`])).stdout;
    assert.equal(await read('meta-data'), seedMetaData(vmA()));
    assert.equal(await read('user-data'), vmA().userData!.toString());
    assert.equal(await read('network-config'), seedNetworkConfig(vmA()));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function pythonYaml(): boolean {
  try {
    execFileSync('python3', ['-c', 'import yaml'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
