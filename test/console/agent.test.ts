import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import WebSocket from 'ws';
import { Agent } from '../../src/agent/server.js';
import { CONSOLE_PATHS } from '../../src/agent/console-client.js';
import { SimDriver } from '../../src/compute/sim/driver.js';
import { openSocket, until } from './support.js';

const TOKEN = 'node-token-for-the-console-test';
const HOST = 'host-console1';

/** The agent's console endpoints on their own: a stand-in controller only hands out the node token. */
describe('agent console endpoints', () => {
  let controller: Server;
  let agent: Agent;
  const driver = new SimDriver({ bootMs: 0, shutdownMs: 0 });
  const vmId = 'vm-c0501e000001';
  const auth = { authorization: `Bearer ${TOKEN}` };
  const wsUrl = (vm = vmId, q = '') => `${agent.url.replace(/^http/, 'ws')}${CONSOLE_PATHS.ws(HOST, vm)}${q}`;

  before(async () => {
    controller = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/v1/agent/register' ? { nodeToken: TOKEN, hosts: [{ name: 'h1', hostId: HOST }] } : {}));
    });
    await new Promise<void>((r) => controller.listen(0, '127.0.0.1', r));
    agent = new Agent({
      controllerUrl: `http://127.0.0.1:${(controller.address() as AddressInfo).port}`, joinToken: 'join', zone: 'z1',
      listen: { host: '127.0.0.1', port: 0 }, hosts: [{ name: 'h1', vcpus: 4, memoryMiB: 4096, architectures: ['x86_64'], driver }],
      heartbeatMs: 60_000, log: pino({ level: 'silent' }),
    });
    await agent.start();
    await driver.start({ vmId, name: 'c', vcpus: 1, memoryMiB: 256, architecture: 'x86_64', resourceType: 'best-effort', disks: [], nics: [] });
  });
  after(async () => {
    await agent?.stop();
    controller?.close();
  });

  it('serves the tail as octet-stream, bounded by ?bytes=', async () => {
    const res = await fetch(agent.url + CONSOLE_PATHS.tail(HOST, vmId), { headers: auth });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assert.match(await res.text(), new RegExp(`^KUMO-BOOT vm=${vmId}`));
    const short = await fetch(`${agent.url}${CONSOLE_PATHS.tail(HOST, vmId)}?bytes=5`, { headers: auth });
    assert.equal((await short.text()).length, 5);
    assert.equal((await fetch(`${agent.url}${CONSOLE_PATHS.tail(HOST, vmId)}?bytes=lots`, { headers: auth })).status, 400);
    assert.equal((await fetch(agent.url + CONSOLE_PATHS.tail('host-other', vmId), { headers: auth })).status, 404);
  });

  it('refuses the tail and the websocket upgrade without the node token', async () => {
    assert.equal((await fetch(agent.url + CONSOLE_PATHS.tail(HOST, vmId))).status, 401);
    for (const headers of [{}, { authorization: 'Bearer wrong' }]) {
      const status = await new Promise<number>((resolve) => {
        const ws = new WebSocket(wsUrl(), { headers });
        ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
        ws.on('open', () => { resolve(101); ws.close(); });
        ws.on('error', () => {});
      });
      assert.equal(status, 401);
    }
  });

  it('sends the tail first, and every attached client sees what any of them types', async () => {
    const a = await openSocket(wsUrl(undefined, '?tail=4096'), auth);
    const b = await openSocket(wsUrl(), auth);
    await until(() => a.text().includes('KUMO-BOOT'), 'tail on a');
    a.ws.send(Buffer.from('from-a\n'));
    b.ws.send(Buffer.from('from-b\n'));
    for (const s of [a, b]) await until(() => s.text().includes('from-a') && s.text().includes('from-b'), 'both inputs echoed to both');
    assert.ok(a.text().indexOf('KUMO-BOOT') < a.text().indexOf('from-'), 'tail before live output');
    assert.ok(!b.text().includes('KUMO-BOOT'), 'no tail when none is asked for');
    // The first client leaving does not end the console for the other.
    a.ws.close();
    await until(() => a.closed !== null, 'a closed');
    b.ws.send(Buffer.from('still-here\n'));
    await until(() => b.text().includes('still-here'), 'b still attached');
    b.ws.close();
  });

  it('closes with 4409 for a VM that does not run and 4404 for a host it does not serve, and ends sessions when the VM stops', async () => {
    const notRunning = await openSocket(wsUrl('vm-000000000000'), auth);
    await until(() => notRunning.closed !== null, 'closed');
    assert.equal(notRunning.closed!.code, 4409);
    const wrongHost = await openSocket(`${agent.url.replace(/^http/, 'ws')}${CONSOLE_PATHS.ws('host-other', vmId)}`, auth);
    await until(() => wrongHost.closed !== null, 'closed');
    assert.equal(wrongHost.closed!.code, 4404);

    const s = await openSocket(wsUrl(), auth);
    await driver.stop(vmId, { force: true, timeoutMs: 0 });
    await until(() => s.closed !== null, 'closed after the VM stopped', 5000);
    assert.deepEqual(s.closed, { code: 1000, reason: `${vmId} stopped` });
  });
});
