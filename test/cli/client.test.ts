import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cloud, rest } from '../helpers/cloud.js';
import { kumo } from './run.js';

/** The CLI against a real `kumo up`: what a user sees on stdout, stderr and in the exit code.
 * Tests run side by side (each makes its own VMs) because every CLI run is a Node start-up. */
describe('kumo CLI client', { concurrency: true }, () => {
  let cloud: Cloud;
  let empty: string;
  const k = (...args: string[]) => kumo([...args, '--data', cloud.data]);

  before(async () => {
    cloud = await Cloud.up();
    empty = mkdtempSync(join(tmpdir(), 'kumo-cli-'));
  });
  after(async () => {
    await cloud?.destroy();
    if (empty) rmSync(empty, { recursive: true, force: true });
  });

  test('vm create → start (waits) → status → stop → delete', async () => {
    const created = await k('vm', 'create', '--type', 'be.small', '--name', 'cli-web');
    assert.equal(created.code, 0, created.stderr);
    const vmId = created.stdout.trim();
    assert.match(vmId, /^vm-[0-9a-f]+$/);

    const start = await k('vm', 'start', vmId);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /^status\s+succeeded$/m);
    assert.match(start.stdout, /^method\s+powerOnVm$/m);
    // Not a terminal, so progress comes as lines, not a bar.
    assert.match(start.stderr, /^req-[0-9a-f]+ \w+ \d+%/m);

    const status = await k('vm', 'status', vmId, '--output', 'json');
    assert.equal(status.code, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout), { vmId, power: 'on', status: 'running', requestId: '' });

    const stop = await k('vm', 'stop', vmId, '--force');
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /^status\s+succeeded$/m);

    const del = await k('vm', 'delete', vmId);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(del.stdout, `${vmId} deleted\n`);
    assert.equal((await k('vm', 'show', vmId)).code, 1);
  });

  test('--no-wait prints the request id; request wait follows it to the end', async () => {
    const created = await k('vm', 'create', '--type', 'be.small');
    assert.equal(created.code, 0, created.stderr);
    const vmId = created.stdout.trim();
    const started = await k('vm', 'start', vmId, '--no-wait');
    assert.equal(started.code, 0, started.stderr);
    const requestId = started.stdout.trim();
    assert.match(requestId, /^req-[0-9a-f]+$/);
    const waited = await k('request', 'wait', requestId, '--output', 'json');
    assert.equal(waited.code, 0, waited.stderr);
    const r = JSON.parse(waited.stdout);
    assert.equal(r.requestId, requestId);
    assert.equal(r.status, 'succeeded');
    // A second start is refused by the service: a fault line, exit 1.
    const again = await k('vm', 'start', vmId);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^kumo: INVALID_STATE \(4\): /);
  });

  test('a fault is one line on stderr and exit 1, never a stack trace', async () => {
    const r = await k('vm', 'show', 'vm-000000000000');
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^kumo: NOT_FOUND \(3\): .*vm-000000000000.*\n$/);
  });

  test('usage errors exit 2', async () => {
    const [noArg, badChoice] = await Promise.all([k('vm', 'show'), k('vm', 'list', '--output', 'yaml')]);
    assert.equal(noArg.code, 2);
    assert.match(noArg.stderr, /missing required argument 'vm'/);
    assert.equal(badChoice.code, 2);
  });

  test('table output has a header row; json output is the API\'s JSON', async () => {
    const vmId = (await k('vm', 'create', '--type', 'be.small', '--name', 'cli-table')).stdout.trim();
    const [table, json, api] = await Promise.all([k('vm', 'list'), k('vm', 'show', vmId, '-o', 'json'), rest(cloud, 'admin', 'GET', `/vms/${vmId}`)]);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^VMID\s+NAME\s+TYPE\s+STATUS$/);
    assert.ok(lines.some((l) => l.startsWith(vmId) && /\bcli-table\s+be\.small\s+stopped$/.test(l)), table.stdout);
    assert.deepEqual(JSON.parse(json.stdout), api.body);
  });

  test('KUMO_URL, KUMO_USER and KUMO_KEY stand in for credentials.json', async () => {
    const c = cloud.creds;
    const r = await kumo(['vm', 'types'], { cwd: empty, env: { KUMO_URL: cloud.url, KUMO_USER: c.admin.user, KUMO_KEY: c.admin.key } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^TYPE\s+VCPUS/);
    assert.match(r.stdout, /^be\.small\s/m);
  });

  test('with no credentials anywhere, one line says where they come from', async () => {
    const r = await kumo(['vm', 'list'], { cwd: empty });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.match(r.stderr, /credentials\.json/);
    assert.match(r.stderr, /KUMO_URL/);
  });

  test('--as tenant cannot see the admin\'s VM', async () => {
    const vmId = (await k('vm', 'create', '--type', 'be.small', '--name', 'admins')).stdout.trim();
    const [list, show] = await Promise.all([k('vm', 'list', '--as', 'tenant', '-o', 'json'), k('vm', 'show', vmId, '--as', 'tenant')]);
    assert.equal(list.code, 0, list.stderr);
    assert.ok(!(JSON.parse(list.stdout) as { vmId: string }[]).some((v) => v.vmId === vmId));
    assert.equal(show.code, 1);
    assert.match(show.stderr, /^kumo: NOT_FOUND \(3\)/);
  });

  test('networks and volumes: create, attach to a stopped VM, show', async () => {
    const vmId = (await k('vm', 'create', '--type', 'be.small')).stdout.trim();
    const [net, vol] = await Promise.all([k('net', 'create', '--name', 'cli-net'), k('vol', 'create', '--size', '2', '--name', 'cli-vol')]);
    const [networkId, volumeId] = [net.stdout.trim(), vol.stdout.trim()];
    assert.match(networkId, /^net-/);
    assert.match(volumeId, /^vol-/);
    const nic = await k('net', 'attach', vmId, networkId, '-o', 'json');
    assert.equal(nic.code, 0, nic.stderr);
    assert.equal(JSON.parse(nic.stdout).slot, 0);
    const disk = await k('vol', 'attach', vmId, volumeId);
    assert.equal(disk.stdout, '1\n');
    const shown = await k('vm', 'show', vmId);
    assert.match(shown.stdout, /^disks\s+slot=0 volumeId=vol-\S+ sizeGiB=10$/m);
    assert.match(shown.stdout, new RegExp(`^\\s+slot=1 volumeId=${volumeId} sizeGiB=2$`, 'm'));
    assert.match(shown.stdout, new RegExp(`^nics\\s+slot=0 networkId=${networkId} mac=\\S+ ipAddresses=-$`, 'm'));
  });
});
