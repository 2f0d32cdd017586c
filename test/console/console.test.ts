import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { KUMO, rest } from '../helpers/cloud.js';
import { kumo, type Run } from '../cli/run.js';
import { SimCloud, openSocket, until } from './support.js';

/** `kumo vm console` (or any input) piped in, as a script runs it. */
function kumoPiped(args: string[], input: string): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KUMO_')));
  const p = spawn(process.execPath, [KUMO, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => { stdout += d; });
  p.stderr.on('data', (d) => { stderr += d; });
  p.stdin.end(input);
  return new Promise((resolve, reject) => {
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function python(script: string, env: Record<string, string>): Promise<Run> {
  const p = spawn('python3', ['-c', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => { stdout += d; });
  p.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve) => p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
}

const GET_CONSOLE_PY = `
import json, os, urllib.parse, xmlrpc.client
u = urllib.parse.urlsplit(os.environ["RPC_URL"])
cred = urllib.parse.quote(os.environ["RPC_USER"], safe="") + ":" + urllib.parse.quote(os.environ["RPC_KEY"], safe="")
p = xmlrpc.client.ServerProxy(f"{u.scheme}://{cred}@{u.netloc}{u.path}")
out = {"full": p.getVmConsole(os.environ["VM"]), "short": p.getVmConsole(os.environ["VM"], 9)}
try:
    p.getVmConsole("vm-000000000000")
except xmlrpc.client.Fault as f:
    out["fault"] = f.faultCode
print(json.dumps(out))
`;

/** The serial console end to end: a controller, a sim agent (whose guest echoes its input), real clients. */
describe('VM serial console', { timeout: 60_000 }, () => {
  const sim = new SimCloud();
  const cloud = sim.cloud;
  let vmId: string;
  let wsBase: string;
  let other: { user: string; key: string };
  const marker = () => `KUMO-BOOT vm=${vmId}`;
  const tenantAuth = () => ({ authorization: `Bearer ${cloud.creds.tenant.key}` });

  before(async () => {
    await sim.start();
    wsBase = cloud.url.replace(/^http/, 'ws');
    vmId = (await rest(cloud, 'tenant', 'POST', '/vms', { type: 'be.small', name: 'console' })).body.vmId;
    const on = await rest(cloud, 'tenant', 'POST', `/vms/${vmId}/power-on`);
    const done = await rest(cloud, 'tenant', 'GET', `/requests/${on.body.requestId}/wait?timeoutSeconds=10`);
    assert.equal(done.body.status, 'succeeded', JSON.stringify(done.body));
    const t = await rest(cloud, 'admin', 'POST', '/tenants', { name: 'console-other' });
    other = (await rest(cloud, 'admin', 'POST', `/tenants/${t.body.tenantId}/users`)).body;
  });
  after(async () => { await sim.stop(); });

  it('REST: the JSON operation and the raw text both show the boot line', async () => {
    const r = await rest(cloud, 'tenant', 'GET', `/vms/${vmId}/console`);
    assert.equal(r.status, 200);
    assert.ok(r.body.console.includes(marker()), r.body.console);
    const raw = await fetch(`${cloud.url}/v1/vms/${vmId}/console/raw?bytes=4096`, { headers: tenantAuth() });
    assert.equal(raw.status, 200);
    assert.match(raw.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(await raw.text(), r.body.console);
  });

  it('XML-RPC: getVmConsole via Python xmlrpc.client returns the same text', async () => {
    const c = cloud.creds;
    const py = await python(GET_CONSOLE_PY, { RPC_URL: c.xmlrpcUrl, RPC_USER: c.tenant.user, RPC_KEY: c.tenant.key, VM: vmId });
    assert.equal(py.code, 0, py.stderr);
    const out = JSON.parse(py.stdout);
    const viaRest = (await rest(cloud, 'tenant', 'GET', `/vms/${vmId}/console`)).body.console;
    assert.equal(out.full, viaRest);
    assert.equal(out.short, viaRest.slice(-9));
    assert.equal(out.fault, 3);
  });

  it('websocket: the tail first, then the echo of what is sent', async () => {
    const s = await openSocket(`${wsBase}/v1/vms/${vmId}/console/ws`, tenantAuth());
    await until(() => s.text().includes(marker()), 'the tail');
    s.ws.send(Buffer.from('typed-over-ws\n'));
    await until(() => s.text().includes('typed-over-ws'), 'the echo');
    assert.ok(s.text().indexOf(marker()) < s.text().indexOf('typed-over-ws'));
    s.ws.close();
    // Browsers authenticate with ?key=; a bad key closes with 4401.
    const browser = await openSocket(`${wsBase}/v1/vms/${vmId}/console/ws?key=${encodeURIComponent(cloud.creds.tenant.key)}&tail=0`);
    browser.ws.send('from-browser\n');
    await until(() => browser.text().includes('from-browser'), 'echo with ?key=');
    assert.ok(!browser.text().includes(marker()), '?tail=0 sends no history');
    browser.ws.close();
    const anon = await openSocket(`${wsBase}/v1/vms/${vmId}/console/ws?key=wrong`);
    await until(() => anon.closed !== null, 'closed');
    assert.equal(anon.closed!.code, 4401);
  });

  it('another tenant: the websocket closes with 4404 and REST answers 404', async () => {
    const s = await openSocket(`${wsBase}/v1/vms/${vmId}/console/ws`, { authorization: `Bearer ${other.key}` });
    await until(() => s.closed !== null, 'closed');
    assert.equal(s.closed!.code, 4404);
    assert.match(s.closed!.reason, /^NOT_FOUND \(3\)/);
    assert.equal(s.text(), '');
    for (const path of ['console', 'console/raw']) {
      const r = await fetch(`${cloud.url}/v1/vms/${vmId}/${path}`, { headers: { authorization: `Bearer ${other.key}` } });
      assert.equal(r.status, 404, path);
      assert.equal((await r.json()).code, 3);
    }
  });

  it('a VM that is not on any host: INVALID_STATE, and 4409 on the websocket', async () => {
    const idle = (await rest(cloud, 'tenant', 'POST', '/vms', { type: 'be.small' })).body.vmId;
    const r = await rest(cloud, 'tenant', 'GET', `/vms/${idle}/console`);
    assert.equal(r.status, 409);
    assert.equal(r.body.detail, `${idle} has not run on any host yet`);
    const s = await openSocket(`${wsBase}/v1/vms/${idle}/console/ws`, tenantAuth());
    await until(() => s.closed !== null, 'closed');
    assert.equal(s.closed!.code, 4409);
  });

  it('CLI: --tail prints the kept output; piped input is echoed back and the command ends', async () => {
    const [tail, piped, missing] = await Promise.all([
      kumo(['vm', 'console', vmId, '--tail', '--data', cloud.data, '--as', 'tenant']),
      kumoPiped(['vm', 'console', vmId, '--data', cloud.data, '--as', 'tenant'], 'hello\n'),
      kumo(['vm', 'console', 'vm-000000000000', '--data', cloud.data, '--as', 'tenant']),
    ]);
    assert.equal(tail.code, 0, tail.stderr);
    assert.ok(tail.stdout.includes(marker()), tail.stdout);
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stderr, new RegExp(`^Connected to ${vmId} console; Ctrl-\\] detaches$`, 'm'));
    assert.ok(piped.stdout.includes(marker()), piped.stdout);
    assert.match(piped.stdout.slice(piped.stdout.indexOf(marker())), /\nhello\n/);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^kumo: NOT_FOUND \(3\): .*vm-000000000000/);
  });
});
