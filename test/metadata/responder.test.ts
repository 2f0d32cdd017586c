import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { metadataHandler } from '../../src/metadata/responder.js';
import { get, request, serve, vmA, vmB, type Served } from './fixtures.js';

let s: Served;
let a: number;
let b: number;
let clock = 1_700_000_000_000;
before(async () => {
  s = await serve([vmA(), vmB()], { now: () => clock });
  a = s.port[vmA().vmId];
  b = s.port[vmB().vmId];
});
after(() => s.close());

const token = async (port: number, ttl = '60'): Promise<string> => {
  const r = await request(port, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': ttl });
  assert.equal(r.status, 200);
  return r.body.toString();
};

test('each tree answers with the content type cloud-init expects', async () => {
  const cases: Array<[string, RegExp]> = [
    ['/openstack', /^text\/plain/],
    ['/openstack/latest/meta_data.json', /^application\/json$/],
    ['/openstack/latest/network_data.json', /^application\/json$/],
    ['/openstack/latest/vendor_data.json', /^application\/json$/],
    ['/openstack/latest/vendor_data2.json', /^application\/json$/],
    ['/openstack/latest/user_data', /^application\/octet-stream$/],
    ['/', /^text\/plain/],
    ['/latest/meta-data/', /^text\/plain/],
    ['/latest/meta-data/instance-id', /^text\/plain/],
    ['/latest/meta-data/public-keys/0/openssh-key', /^text\/plain/],
    ['/latest/user-data', /^application\/octet-stream$/],
  ];
  for (const [path, type] of cases) {
    const r = await get(a, path);
    assert.equal(r.status, 200, path);
    assert.match(String(r.headers['content-type']), type, path);
    assert.equal(Number(r.headers['content-length']), r.body.length, path);
  }
  assert.equal(JSON.parse((await get(a, '/openstack/latest/meta_data.json')).body.toString()).uuid, vmA().vmId);
  assert.equal((await get(a, '/latest/meta-data/instance-id')).body.toString(), vmA().vmId);
  assert.deepEqual((await get(a, '/openstack/2018-08-27/user_data')).body, vmA().userData);
});

test('HEAD answers like GET without a body', async () => {
  const r = await request(a, 'HEAD', '/openstack/latest/meta_data.json');
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 0);
  assert.ok(Number(r.headers['content-length']) > 0);
});

test('unknown paths are 404 with a fixed body that echoes nothing', async () => {
  for (const path of ['/nope', '/openstack/latest/nope', '/latest/meta-data/nope', '/kumo/v2/config', '/openstack/%2e%2e/x', '/latest/meta-data/<script>']) {
    const r = await get(a, path, { 'x-forwarded-for': '198.51.100.7' });
    assert.equal(r.status, 404, path);
    assert.equal(r.body.toString(), 'Not Found');
  }
});

test('wrong methods are 405 with Allow', async () => {
  const cases: Array<[string, string, string]> = [
    ['POST', '/openstack/latest/meta_data.json', 'GET, HEAD'],
    ['DELETE', '/latest/meta-data/instance-id', 'GET, HEAD'],
    ['PUT', '/latest/user-data', 'GET, HEAD'],
    ['GET', '/latest/api/token', 'PUT'],
    ['POST', '/kumo/v1/config', 'GET'],
    ['GET', '/kumo/v1/applied', 'POST'],
  ];
  for (const [method, path, allow] of cases) {
    const r = await request(a, method, path);
    assert.equal(r.status, 405, `${method} ${path}`);
    assert.equal(r.headers.allow, allow);
  }
});

test('IMDSv2: PUT a token with a TTL in 1..21600, then GET with it', async () => {
  const put = await request(a, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '21600' });
  assert.equal(put.status, 200);
  assert.match(String(put.headers['content-type']), /^text\/plain/);
  assert.equal(put.headers['x-aws-ec2-metadata-token-ttl-seconds'], '21600');
  const r = await get(a, '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': put.body.toString() });
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), vmA().vmId);
  for (const ttl of ['0', '21601', 'abc', '']) {
    assert.equal((await request(a, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': ttl })).status, 400, ttl);
  }
  assert.equal((await request(a, 'PUT', '/latest/api/token')).status, 400);
});

test('IMDSv2: a token expires with the clock', async () => {
  const t = await token(a, '2');
  assert.equal((await get(a, '/latest/meta-data/hostname', { 'x-aws-ec2-metadata-token': t })).status, 200);
  clock += 2_000;
  assert.equal((await get(a, '/latest/meta-data/hostname', { 'x-aws-ec2-metadata-token': t })).status, 401);
});

test("IMDSv2: VM A's token is refused on VM B's connection, and a garbage token always", async () => {
  const ta = await token(a);
  const r = await get(b, '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': ta });
  assert.equal(r.status, 401);
  assert.equal(r.body.toString(), 'Unauthorized');
  assert.equal((await get(b, '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': await token(b) })).body.toString(), vmB().vmId);
  assert.equal((await get(a, '/latest/meta-data/', { 'x-aws-ec2-metadata-token': 'x' })).status, 401);
});

test('IMDSv1 GETs are answered by default; with allowV1 false only a token opens the EC2 tree', async () => {
  assert.equal((await get(a, '/latest/meta-data/instance-id')).status, 200);
  const strict = await serve([vmA()], { allowV1: false });
  try {
    const p = strict.port[vmA().vmId];
    assert.equal((await get(p, '/latest/meta-data/instance-id')).status, 401);
    assert.equal((await get(p, '/')).status, 401);
    assert.equal((await get(p, '/openstack/latest/meta_data.json')).status, 200, 'the OpenStack tree has no tokens');
    assert.equal((await get(p, '/latest/meta-data/instance-id', { 'x-aws-ec2-metadata-token': await token(p) })).status, 200);
  } finally {
    await strict.close();
  }
});

test('PUT bodies are limited: a token request with a big body is 413', async () => {
  const big = Buffer.alloc(8192, 0x61);
  const r = await request(a, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' }, big);
  assert.equal(r.status, 413);
  const chunked = await request(a, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60', 'transfer-encoding': 'chunked' }, big);
  assert.equal(chunked.status, 413, 'no Content-Length to trust: counted while streaming');
  assert.equal((await request(a, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' }, 'x')).status, 200);
});

test('an unidentified connection is refused, and lookup failures are a bare 500', async () => {
  const anon = await serve([vmA()], { identify: async () => null });
  const broken = await serve([vmA()], { lookup: async () => { throw new Error('db at 10.0.0.1 down'); } });
  try {
    const r = await get(anon.port[vmA().vmId], '/openstack/latest/meta_data.json');
    assert.equal(r.status, 403);
    assert.equal(r.body.toString(), 'Forbidden');
    const e = await get(broken.port[vmA().vmId], '/openstack/latest/meta_data.json');
    assert.equal(e.status, 500);
    assert.equal(e.body.toString(), 'Internal Server Error');
  } finally {
    await anon.close();
    await broken.close();
  }
});

test('a short secret is refused at construction', () => {
  assert.throws(() => metadataHandler({
    identify: async () => null, lookup: async () => null, onApplied: () => {}, secret: randomBytes(16),
  }), /32 bytes/);
});
