/**
 * A VM is whoever its connection says it is: nothing in the request can make VM A's connection
 * read VM B's data.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { get, request, serve, vmA, vmB, type Served } from './fixtures.js';

let s: Served;
let a: number;
let b: number;
before(async () => {
  s = await serve([vmA(), vmB()]);
  a = s.port[vmA().vmId];
  b = s.port[vmB().vmId];
});
after(() => s.close());

const B = vmB();
const forgeries: Record<string, string> = {
  'x-forwarded-for': B.localIpv4!,
  'x-real-ip': B.localIpv4!,
  forwarded: `for=${B.localIpv4}`,
  host: `${B.localIpv4}:80`,
  'x-instance-id': B.vmId,
  'x-openstack-instance-id': B.vmId,
  'x-tenant-id': B.tenantId,
  'x-kumo-vm': B.vmId,
  'x-forwarded-host': `${B.localIpv4}`,
};
const paths = ['/openstack/latest/meta_data.json', '/openstack/latest/user_data', '/latest/meta-data/instance-id',
  '/latest/meta-data/public-keys/0/openssh-key', '/latest/user-data', '/kumo/v1/config'];

function leaksB(body: Buffer): boolean {
  const t = body.toString('latin1');
  return [B.vmId, B.hostname, 'b-secret', 'b-only', 'Bob', B.localIpv4!].some((x) => t.includes(x));
}

test("headers naming VM B, all at once, still get VM A's own answers", async () => {
  for (const path of paths) {
    const plain = await get(a, path);
    const forged = await get(a, path, forgeries);
    assert.equal(forged.status, 200, path);
    assert.deepEqual(forged.body, plain.body, path);
    assert.ok(!leaksB(forged.body), path);
  }
});

test('an absolute-form request target naming B, and query strings, do not steer identity either', async () => {
  const r = await get(a, `http://${B.localIpv4}/openstack/latest/meta_data.json?vm=${B.vmId}&instance_id=${B.vmId}`);
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body.toString()).uuid, vmA().vmId);
});

test("a token issued to B's connection, presented with B's headers on A's connection, is refused", async () => {
  const tb = (await request(b, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' })).body.toString();
  const r = await get(a, '/latest/meta-data/instance-id', { ...forgeries, 'x-aws-ec2-metadata-token': tb });
  assert.equal(r.status, 401);
  assert.ok(!leaksB(r.body));
});

test('property: any headers on A\'s connection either get A\'s exact answer or an error, never B\'s data', async () => {
  const tb = (await request(b, 'PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '600' })).body.toString();
  const expected = new Map<string, Buffer>();
  for (const p of paths) expected.set(p, (await get(a, p)).body);
  const name = fc.oneof(
    fc.constantFrom(...Object.keys(forgeries), 'x-aws-ec2-metadata-token', 'cookie', 'authorization', 'via', 'user-agent'),
    fc.stringMatching(/^x-[a-z0-9-]{1,20}$/),
  );
  const value = fc.oneof(
    fc.constantFrom(B.vmId, B.localIpv4!, B.hostname, tb, `for=${B.localIpv4}`, '127.0.0.1', '169.254.169.254'),
    fc.stringMatching(/^[ -~]{0,40}$/).map((v) => v.trim()),
  );
  await fc.assert(fc.asyncProperty(fc.constantFrom(...paths), fc.dictionary(name, value, { maxKeys: 6 }), async (path, headers) => {
    const r = await get(a, path, headers);
    assert.ok(!leaksB(r.body), `${path} ${JSON.stringify(headers)}`);
    if (r.status === 200) assert.deepEqual(r.body, expected.get(path));
    else assert.ok([400, 401].includes(r.status), `${r.status} for ${JSON.stringify(headers)}`);
  }), { numRuns: 150 });
});
