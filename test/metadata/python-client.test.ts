/** A real HTTP client other than Node's: Python's urllib, the stack cloud-init's helpers are built on. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { serve, vmA, type Served } from './fixtures.js';

const script = String.raw`
import json, sys, urllib.request, urllib.error
base = sys.argv[1]
def fetch(path, method='GET', headers={}):
    req = urllib.request.Request(base + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return {'status': r.status, 'type': r.headers.get('Content-Type'), 'body': r.read().decode()}
    except urllib.error.HTTPError as e:
        return {'status': e.code, 'type': e.headers.get('Content-Type'), 'body': e.read().decode()}
out = {
    'versions': fetch('/openstack'),
    'meta': fetch('/openstack/latest/meta_data.json'),
    'keys': fetch('/latest/meta-data/public-keys/'),
    'no_user_data': fetch('/openstack/latest/user_data'),
}
token = fetch('/latest/api/token', 'PUT', {'X-aws-ec2-metadata-token-ttl-seconds': '21600'})
out['token'] = token
out['v2'] = fetch('/latest/meta-data/instance-id', headers={'X-aws-ec2-metadata-token': token['body']})
print(json.dumps(out))
`;

let s: Served;
before(async () => { s = await serve([vmA({ userData: null })]); });
after(() => s.close());

test('python urllib reads the OpenStack and EC2 trees, and does the IMDSv2 PUT then GET', async () => {
  const { stdout } = await promisify(execFile)('python3', ['-c', script, `http://127.0.0.1:${s.port[vmA().vmId]}`]);
  const out = JSON.parse(stdout) as Record<string, { status: number; type: string; body: string }>;
  assert.equal(out.versions.status, 200);
  assert.ok(out.versions.body.split('\n').includes('2018-08-27'));
  assert.equal(out.meta.type, 'application/json');
  assert.equal(JSON.parse(out.meta.body).uuid, vmA().vmId);
  assert.equal(out.keys.body, '0=alice\n1=ci');
  assert.equal(out.no_user_data.status, 404);
  assert.equal(out.token.status, 200);
  assert.equal(out.v2.status, 200);
  assert.equal(out.v2.body, vmA().vmId);
});
