import { test } from 'node:test';
import assert from 'node:assert/strict';
import { restRequest } from '../../src/cli/client/call.js';
import { resolveConnection } from '../../src/cli/client/connection.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('operations become REST requests the way the transport reads them back', () => {
  assert.deepEqual(restRequest('getVmInfo', { vmId: 'vm-1' }), { method: 'GET', path: '/v1/vms/vm-1', query: undefined });
  // A lone struct parameter is the whole body.
  assert.deepEqual(restRequest('allocateVm', { vm: { type: 'be.small' } }), { method: 'POST', path: '/v1/vms', body: { type: 'be.small' } });
  assert.deepEqual(restRequest('migrateVm', { vmId: 'vm-1', target: { host: 'host-2' } }), { method: 'POST', path: '/v1/vms/vm-1/migrate', body: { host: 'host-2' } });
  // Several parameters: each one a body member, or a query parameter for GET.
  assert.deepEqual(restRequest('powerOffVm', { vmId: 'vm-1', force: true }), { method: 'POST', path: '/v1/vms/vm-1/power-off', body: { force: true } });
  assert.deepEqual(restRequest('waitRequest', { requestId: 'req-1', timeoutSeconds: 2 }), { method: 'GET', path: '/v1/requests/req-1/wait', query: { timeoutSeconds: 2 } });
  assert.deepEqual(restRequest('removeIpAddress', { vmId: 'vm-1', slot: 0, ip: '10.0.0.5' }), { method: 'DELETE', path: '/v1/vms/vm-1/nics/0/addresses/10.0.0.5', body: undefined });
  assert.deepEqual(restRequest('getResourceComment', { resourceId: 'a/b' }).path, '/v1/comments/a%2Fb');
  assert.throws(() => restRequest('getVmInfo', {}), /vmId is required/);
});

test('credentials: flags, then KUMO_*, then credentials.json; user and key travel together', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kumo-creds-'));
  try {
    writeFileSync(join(dir, 'credentials.json'), JSON.stringify({
      restUrl: 'http://file:1/v1', admin: { user: 'admin', key: 'ka' }, tenant: { user: 'demo', key: 'kt' },
    }));
    const env = { KUMO_URL: 'http://env:2/', KUMO_USER: 'eu', KUMO_KEY: 'ek' };
    assert.deepEqual(resolveConnection({ data: dir }, {}), { url: 'http://file:1', user: 'admin', key: 'ka', source: join(dir, 'credentials.json') });
    assert.deepEqual(resolveConnection({ data: dir, as: 'tenant' }, {}), { url: 'http://file:1', user: 'demo', key: 'kt', source: join(dir, 'credentials.json') });
    assert.deepEqual(resolveConnection({ data: dir }, env), { url: 'http://env:2', user: 'eu', key: 'ek', source: 'environment' });
    assert.deepEqual(resolveConnection({ data: dir, url: 'http://flag:3/v1', user: 'fu', key: 'fk' }, env), { url: 'http://flag:3', user: 'fu', key: 'fk', source: 'flags' });
    // Asking for a user of the file by name means the file's key, whatever KUMO_KEY says.
    assert.equal(resolveConnection({ data: dir, as: 'tenant' }, env).key, 'kt');
    assert.throws(() => resolveConnection({ data: join(dir, 'none') }, {}), /credentials\.json not found.*kumo up.*KUMO_URL/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
