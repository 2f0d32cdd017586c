/**
 * Hostile and broken input at /RPC2: each gets its documented fault (shared/haas-api.md, Faults)
 * and the server keeps serving — every case is followed by a valid call.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Cloud, type Creds } from '../helpers/cloud.js';
import { basic, postRpc, pythonEnv, runPython, xmlCall, xv, type RpcReply } from './support.js';

const MiB = 1 << 20;

describe('bad input at /RPC2', { timeout: 60_000 }, () => {
  let cloud: Cloud;
  let creds: Creds;
  let auth: Record<string, string>;
  let vmId: string;

  const send = (body: string, headers: Record<string, string> = {}) => postRpc(creds.xmlrpcUrl, body, { ...auth, ...headers });

  /** The valid call made after every bad one. */
  async function stillServing(): Promise<void> {
    const r = await send(xmlCall('getVmInfo', xv.str(vmId)));
    assert.equal(r.status, 200);
    assert.equal(r.fault, null, `valid call faulted: ${r.text.slice(0, 300)}`);
    assert.match(r.text, /<methodResponse><params><param><value><struct>/);
  }

  function assertFault(r: RpcReply, code: number, message?: RegExp): void {
    assert.equal(r.status, 200, `HTTP ${r.status}: ${r.text.slice(0, 300)}`);
    assert.match(r.contentType, /^text\/xml/);
    assert.ok(r.fault, `no fault in ${r.text.slice(0, 300)}`);
    assert.equal(r.fault.code, code, r.fault.message);
    if (message) assert.match(r.fault.message, message);
    // A fault explains; it never carries a stack trace.
    assert.doesNotMatch(r.fault.message, /\n\s+at |\.js:\d+/);
  }

  const faultCase = (name: string, body: () => string, code: number, message?: RegExp) =>
    it(`${name} → ${code}`, async () => {
      assertFault(await send(body()), code, message);
      await stillServing();
    });

  before(async () => {
    cloud = await Cloud.up();
    creds = cloud.creds;
    auth = { authorization: basic(creds.tenant.user, creds.tenant.key) };
    const r = await send(xmlCall('allocateVm', xv.struct({ type: xv.str('be.small'), name: xv.str('bad-input') })));
    vmId = /<string>(vm-[0-9a-f]+)<\/string>/.exec(r.text)?.[1] ?? '';
    assert.match(vmId, /^vm-/, r.text);
  });
  after(async () => { await cloud?.destroy(); });

  describe('not XML-RPC at all', () => {
    faultCase('unclosed tags', () => '<?xml version="1.0"?><methodCall><methodName>getVmList</methodName>', -32700, /malformed XML/);
    faultCase('mismatched tags', () => '<methodCall><methodName>getVmList</methodCall></methodName>', -32700);
    faultCase('JSON', () => '{"method": "getVmList"}', -32700);
    faultCase('a methodResponse', () => '<?xml version="1.0"?><methodResponse><params/></methodResponse>', -32600, /methodCall/);
    faultCase('another document', () => '<?xml version="1.0"?><html><body>hi</body></html>', -32600);
    faultCase('a methodCall without methodName', () => '<methodCall><params/></methodCall>', -32600);
    faultCase('values nested 5,000 deep', () => xmlCall('getVmInfo', `${'<value><array><data>'.repeat(5000)}${'</data></array></value>'.repeat(5000)}`), -32600);
  });

  describe('entity declarations', () => {
    it('a billion-laughs DOCTYPE → -32600, refused before any expansion', async () => {
      const ents = ['<!ENTITY lol0 "lol">'];
      for (let i = 1; i <= 9; i++) ents.push(`<!ENTITY lol${i} "${`&lol${i - 1};`.repeat(10)}">`);
      const bomb = `<?xml version="1.0"?><!DOCTYPE lolz [${ents.join('')}]><methodCall><methodName>getVmInfo</methodName><params><param><value><string>&lol9;</string></value></param></params></methodCall>`;
      const t0 = Date.now();
      const r = await send(bomb);
      assertFault(r, -32600, /entity/i);
      assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms: was it expanded?`);
      assert.ok(r.text.length < 2000);
      await stillServing();
    });

    it('an external entity (XXE) → -32600, nothing read from disk', async () => {
      const r = await send('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><methodCall><methodName>&e;</methodName></methodCall>');
      assertFault(r, -32600);
      assert.doesNotMatch(r.text, /root:/);
      await stillServing();
    });
  });

  describe('size', () => {
    it('a 5 MiB body is refused (HTTP 413 or fault -32600)', async () => {
      const r = await send(xmlCall('getVmInfo', xv.str('a'.repeat(5 * MiB))));
      if (r.status === 413) assert.match(r.contentType, /json|xml/);
      else assertFault(r, -32600);
      await stillServing();
    });

    it('a 5 MiB chunked body (no Content-Length) is cut off, and the server keeps serving', async () => {
      const { port } = new URL(creds.xmlrpcUrl);
      const sock = connect(Number(port), '127.0.0.1');
      let answer = '';
      sock.on('data', (d) => { answer += d; });
      const closed = new Promise<void>((resolve) => sock.on('close', () => resolve()));
      sock.on('error', () => { /* a reset while we still write is one way of being refused */ });
      await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      sock.write(`POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${auth.authorization}\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = 'a'.repeat(64 * 1024);
      for (let sent = 0; sent < 5 * MiB && !sock.destroyed && !answer; sent += chunk.length) {
        if (!sock.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`)) await new Promise((r) => setTimeout(r, 5));
      }
      if (!sock.destroyed) sock.end('0\r\n\r\n');
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
      sock.destroy();
      // Either the 413 came back or the server dropped the connection; it never took the body.
      if (answer) assert.match(answer, /^HTTP\/1\.1 413 /);
      await stillServing();
    });

    it('a 1,000,000-character VM name (body under 1 MiB) → 5, nothing allocated', async () => {
      const body = xmlCall('allocateVm', xv.struct({ type: xv.str('be.small'), name: xv.str('n'.repeat(1_000_000)) }));
      assert.ok(Buffer.byteLength(body) < MiB, 'must stay under the body limit to reach validation');
      assertFault(await send(body), 5, /name/);
      const list = await send(xmlCall('getVmList'));
      assert.doesNotMatch(list.text, /nnnnnnnnnn/);
      await stillServing();
    });

    faultCase('a 1,000,000-character comment', () => xmlCall('setResourceComment', xv.str(vmId), xv.str('c'.repeat(1_000_000))), 5);
    faultCase('a 1,000,000-character id', () => xmlCall('getVmInfo', xv.str('v'.repeat(1_000_000))), 5);
  });

  describe('wrong parameters', () => {
    faultCase('getVmInfo(int)', () => xmlCall('getVmInfo', xv.int(42)), 5, /parameter 1/);
    faultCase('allocateVm(string)', () => xmlCall('allocateVm', xv.str('be.small')), 5);
    faultCase('powerOffVm(vmId, "yes")', () => xmlCall('powerOffVm', xv.str(vmId), xv.str('yes')), 5, /parameter 2/);
    faultCase('waitRequest(id, "ten")', () => xmlCall('waitRequest', xv.str('req-000000000000'), xv.str('ten')), 5);
    faultCase('a struct member of the wrong type', () => xmlCall('allocateVm', xv.struct({ type: xv.int(1) })), 5);
    faultCase('getVmInfo()', () => xmlCall('getVmInfo'), 5, /takes 1 parameter/);
    faultCase('getVmInfo(a, b)', () => xmlCall('getVmInfo', xv.str(vmId), xv.str(vmId)), 5, /got 2/);
    faultCase('getVmList(extra)', () => xmlCall('getVmList', xv.str('extra')), 5);
    faultCase('allocateVm without its required member', () => xmlCall('allocateVm', xv.struct({ name: xv.str('x') })), 5);
    faultCase('an unknown member', () => xmlCall('allocateVm', xv.struct({ type: xv.str('be.small'), colour: xv.str('blue') })), 5, /unknown member "colour"/);
    it('an unknown member of a nested struct → 5 (admin createTenant)', async () => {
      const r = await postRpc(creds.xmlrpcUrl, xmlCall('createTenant', xv.struct({ name: xv.str('nested-bad'), quota: xv.struct({ vms: xv.int(1), gpus: xv.int(2) }) })),
        { authorization: basic(creds.admin.user, creds.admin.key) });
      assertFault(r, 5, /gpus/);
      await stillServing();
    });
  });

  describe('out-of-range values', () => {
    faultCase('negative systemDiskGiB', () => xmlCall('allocateVm', xv.struct({ type: xv.str('be.small'), systemDiskGiB: xv.int(-10) })), 5);
    faultCase('negative volume size', () => xmlCall('allocateVolume', xv.struct({ sizeGiB: xv.int(-1) })), 5, /sizeGiB/);
    faultCase('zero volume size', () => xmlCall('allocateVolume', xv.struct({ sizeGiB: xv.int(0) })), 5);
    faultCase('negative slot', () => xmlCall('detachVolume', xv.str(vmId), xv.int(-1)), 5);
    faultCase('negative timeout', () => xmlCall('waitRequest', xv.str('req-000000000000'), xv.int(-1)), 5);
  });

  describe('methods', () => {
    faultCase('an unknown method', () => xmlCall('noSuchMethod'), -32601);
    faultCase('an unknown system method', () => xmlCall('system.shutdown'), -32601);
    it('system.listMethods still answers', async () => {
      const r = await send(xmlCall('system.listMethods'));
      assert.equal(r.fault, null);
      assert.match(r.text, /<string>allocateVm<\/string>/);
    });
  });

  describe('credentials', () => {
    const unauthorized = (name: string, headers: () => Record<string, string>) =>
      it(`${name} → HTTP 401`, async () => {
        const r = await postRpc(creds.xmlrpcUrl, xmlCall('getVmList'), headers());
        assert.equal(r.status, 401);
        assert.equal(r.fault, null);
        await stillServing();
      });
    it('none → HTTP 401 with a Basic challenge', async () => {
      const res = await fetch(creds.xmlrpcUrl, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: xmlCall('getVmList') });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic /);
      await res.text();
      await stillServing();
    });
    unauthorized('a wrong key', () => ({ authorization: basic(creds.tenant.user, 'wrong') }));
    unauthorized('the right key under another user name', () => ({ authorization: basic(creds.admin.user, creds.tenant.key) }));
    unauthorized('an unknown user', () => ({ authorization: basic('nobody', 'nothing') }));
    unauthorized('Basic without a colon', () => ({ authorization: `Basic ${Buffer.from('demo').toString('base64')}` }));
    unauthorized('an unknown scheme', () => ({ authorization: `Digest ${creds.tenant.key}` }));
  });

  describe('empty body', () => {
    faultCase('text/xml', () => '', -32600, /empty/);
    it('without a Content-Type → -32600 (as a fault or a problem document)', async () => {
      const res = await fetch(creds.xmlrpcUrl, { method: 'POST', headers: auth });
      const text = await res.text();
      if (res.status === 200) assert.equal(text.match(/<int>(-?\d+)<\/int>/)?.[1], '-32600');
      else {
        assert.ok(res.status >= 400 && res.status < 500, `HTTP ${res.status}`);
        assert.equal(JSON.parse(text).code, -32600, text);
      }
      await stillServing();
    });
  });

  it("Python's xmlrpc.client gets the same faults (and keeps getting answers)", async () => {
    const py = await runPython('haas_bad_input.py', pythonEnv(creds), 30_000);
    assert.equal(py.code, 0, py.stderr);
    const r = py.report;
    const expect: Record<string, (o: any) => boolean> = {
      'wrongType.getVmInfo(int)': (o) => o.code === 5,
      'wrongType.allocateVm(string)': (o) => o.code === 5,
      'wrongType.powerOffVm(force=string)': (o) => o.code === 5,
      'wrongType.systemDiskGiB(double)': (o) => o.code === 5,
      'wrongCount.getVmInfo()': (o) => o.code === 5,
      'wrongCount.getVmInfo(a,b)': (o) => o.code === 5,
      'wrongCount.getVmList(x)': (o) => o.code === 5,
      'unknownMember.allocateVm': (o) => o.code === 5,
      'unknownMember.createTenant.quota': (o) => o.code === 5,
      unknownMethod: (o) => o.code === -32601,
      'string1MB.allocateVm.name': (o) => o.code === 5,
      'string1MB.setResourceComment': (o) => o.code === 5,
      'negative.systemDiskGiB': (o) => o.code === 5,
      'negative.allocateVolume.sizeGiB': (o) => o.code === 5,
      'negative.waitRequest.timeout': (o) => o.code === 5,
      // Python writes the whole body before it reads: the 413 must still reach it, not a broken pipe.
      body5MiB: (o) => o.http === 413 || o.code === -32600,
      noCredentials: (o) => o.http === 401,
      wrongKey: (o) => o.http === 401,
      keyOfAnotherUser: (o) => o.http === 401,
    };
    for (const [name, ok] of Object.entries(expect)) {
      assert.ok(r[name], `case ${name} missing from the report`);
      assert.ok(ok(r[name]), `${name}: ${JSON.stringify(r[name])}`);
      assert.equal(r[name].servingAfter, true, `${name}: server not serving afterwards: ${r[name].servingAfter}`);
    }
    assert.deepEqual(r.vmsNamedBadly, []);
    await stillServing();
  });
});
