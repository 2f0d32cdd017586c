/**
 * The QMP client against a fake monitor written here: what a real QEMU will not do on demand
 * (stay silent, send garbage, cut a message in pieces, report KVMMissingCap) is tested
 * deterministically. test/compute/qmp-qemu.test.ts covers the real QEMU.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import pino from 'pino';
import {
  QmpClosed, QmpCommandNotFound, QmpCommands, QmpDeviceNotActive, QmpDeviceNotFound, QmpError,
  QmpGenericError, QmpKvmMissingCap, QmpMonitor, QmpProtocolError, QmpTimeout, isQmpError,
  type QmpExecutor, type QmpLogger,
} from '../../src/compute/qemu/qmp/index.js';
import { LineDecoder } from '../../src/compute/qemu/qmp/framing.js';

// The agent passes its pino logger straight in; this fails to compile if that stops fitting.
const _pinoFits: QmpLogger = pino({ level: 'silent' });
void _pinoFits;

const GREETING = { QMP: { version: { qemu: { micro: 0, minor: 2, major: 7 }, package: 'fake' }, capabilities: ['oob'] } };

interface Command { execute: string; arguments?: Record<string, unknown>; id?: unknown }

/** One accepted client of the fake monitor. */
class Peer {
  constructor(readonly socket: Socket) {}
  send(msg: object | string): void {
    this.socket.write(typeof msg === 'string' ? msg : `${JSON.stringify(msg)}\r\n`);
  }
  reply(cmd: Command, ret: unknown = {}): void {
    this.send({ return: ret, id: cmd.id });
  }
  event(event: string, data?: object): void {
    this.send({ timestamp: { seconds: 1700000000, microseconds: 42 }, event, ...(data ? { data } : {}) });
  }
}

interface FakeOptions {
  /** Raw text sent on accept instead of the standard greeting; null sends nothing. */
  greeting?: string | null;
  /** Called for every command after qmp_capabilities (which is answered automatically). */
  onCommand?: (cmd: Command, peer: Peer) => void;
  onConnect?: (peer: Peer) => void;
}

async function fakeQmp(t: TestContext, opts: FakeOptions = {}): Promise<{ path: string; server: Server; peers: Peer[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'kumo-qmpfake-'));
  const path = join(dir, 'qmp.sock');
  const peers: Peer[] = [];
  const server = createServer((socket) => {
    const peer = new Peer(socket);
    peers.push(peer);
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const cmd = JSON.parse(buf.slice(0, nl)) as Command;
        buf = buf.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') peer.reply(cmd);
        else opts.onCommand?.(cmd, peer);
      }
    });
    if (opts.greeting === undefined) peer.send(GREETING);
    else if (opts.greeting !== null) peer.send(opts.greeting);
    opts.onConnect?.(peer);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.after(async () => {
    for (const p of peers) p.socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });
  return { path, server, peers };
}

async function connect(t: TestContext, path: string, log?: QmpLogger, timeoutMs = 2000): Promise<QmpMonitor> {
  const mon = await QmpMonitor.connect(path, { timeoutMs, log });
  t.after(() => mon.close());
  return mon;
}

function capturingLogger(): QmpLogger & { lines: { level: string; obj: object; msg: string }[] } {
  const lines: { level: string; obj: object; msg: string }[] = [];
  return {
    lines,
    debug: (obj, msg) => { lines.push({ level: 'debug', obj, msg }); },
    warn: (obj, msg) => { lines.push({ level: 'warn', obj, msg }); },
  };
}

describe('QMP framing', () => {
  it('splits lines across chunks, CRLF or LF, several per chunk, and a UTF-8 character cut in two', () => {
    const d = new LineDecoder();
    const bytes = Buffer.from('{"a":1}\r\n{"b":"ü"}\n\r\n{"c"', 'utf8');
    const cut = bytes.indexOf(0xbc); // the second byte of ü
    assert.deepEqual(d.push(bytes.subarray(0, cut)), ['{"a":1}']);
    assert.deepEqual(d.push(bytes.subarray(cut)), ['{"b":"ü"}']);
    assert.equal(d.remainder, '{"c"');
    assert.deepEqual(d.push(Buffer.from(':3}\r\n')), ['{"c":3}']);
  });

  it('yields the same messages however the stream is cut (property)', () => {
    const text = fc.string({ unit: 'binary' }); // multi-byte characters, so cuts land inside them
    const msg = fc.record({ event: text, data: fc.record({ s: text, n: fc.integer() }) });
    fc.assert(fc.property(fc.array(msg, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (msgs, cuts) => {
      const lines = msgs.map((m) => JSON.stringify(m));
      const wire = Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'utf8');
      const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
      const d = new LineDecoder();
      const out: string[] = [];
      let prev = 0;
      for (const p of [...points, wire.length]) {
        out.push(...d.push(wire.subarray(prev, p)));
        prev = p;
      }
      assert.deepEqual(out, lines);
    }));
  });

  it('reads a greeting sent byte by byte, and an event sharing a chunk with a reply', async (t) => {
    const greeting = `${JSON.stringify(GREETING)}\r\n`;
    const fake = await fakeQmp(t, {
      greeting: null,
      onConnect: async (peer) => {
        for (const ch of greeting) { peer.send(ch); await sleep(0); }
      },
      onCommand: (cmd, peer) => {
        const ev = { event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } };
        peer.send([ev, { return: cmd.execute, id: cmd.id }].map((m) => JSON.stringify(m)).join('\r\n') + '\r\n');
      },
    });
    const mon = await connect(t, fake.path);
    assert.equal(mon.version.major, 7);
    assert.equal(mon.version.package, 'fake');
    assert.deepEqual(mon.greeting.capabilities, ['oob']);
    const seen: string[] = [];
    mon.on('STOP', (e) => seen.push(`${e.event}@${e.timestamp.seconds}`));
    const reply = await mon.execute('stop');
    seen.push(String(reply));
    assert.deepEqual(seen, ['STOP@1', 'stop'], 'the event reaches listeners before the reply resolves');
  });
});

describe('QMP command queue', () => {
  it('lets callers run commands concurrently but keeps one on the wire at a time', async (t) => {
    let outstanding = 0;
    let most = 0;
    const fake = await fakeQmp(t, {
      onCommand: (cmd, peer) => {
        most = Math.max(most, ++outstanding);
        setTimeout(() => { outstanding--; peer.reply(cmd, cmd.arguments?.n); }, 2);
      },
    });
    const mon = await connect(t, fake.path);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, n) => mon.execute('echo', { n })));
    assert.deepEqual(replies, Array.from({ length: 20 }, (_, n) => n));
    assert.equal(most, 1);
  });

  it('moves on after a timeout; a command that timed out in the queue never reaches QEMU', async (t) => {
    const received: string[] = [];
    const fake = await fakeQmp(t, {
      onCommand: (cmd, peer) => {
        received.push(cmd.execute);
        if (cmd.execute !== 'stuck') peer.reply(cmd, cmd.execute);
      },
    });
    const mon = await connect(t, fake.path);
    const stuck = mon.execute('stuck', undefined, { timeoutMs: 100 }).catch((e: unknown) => e);
    const queued = mon.execute('impatient', undefined, { timeoutMs: 30 }).catch((e: unknown) => e);
    const patient = mon.execute('patient', undefined, { timeoutMs: 1000 });
    const q = await queued;
    assert.ok(q instanceof QmpTimeout);
    assert.equal(q.sent, false);
    assert.match(q.desc, /not sent within 30 ms/);
    const s = await stuck;
    assert.ok(s instanceof QmpTimeout);
    assert.equal(s.sent, true);
    assert.equal(await patient, 'patient');
    assert.deepEqual(received, ['stuck', 'patient']);
  });
});

describe('QMP errors', () => {
  it('maps every QEMU error class to its own error, with the command and desc', async (t) => {
    const fake = await fakeQmp(t, {
      onCommand: (cmd, peer) => peer.send({ id: cmd.id, error: { class: cmd.execute, desc: `desc of ${cmd.execute}` } }),
    });
    const mon = await connect(t, fake.path);
    const cases: [string, new (...a: never[]) => QmpError][] = [
      ['GenericError', QmpGenericError], ['CommandNotFound', QmpCommandNotFound],
      ['DeviceNotActive', QmpDeviceNotActive], ['DeviceNotFound', QmpDeviceNotFound],
      ['KVMMissingCap', QmpKvmMissingCap], ['SomeFutureClass', QmpError],
    ];
    for (const [cls, ctor] of cases) {
      const err = await mon.execute(cls).then(() => assert.fail('resolved'), (e: unknown) => e);
      assert.ok(err instanceof ctor, `${cls} → ${(err as Error).name}`);
      assert.ok(isQmpError(err));
      assert.equal(err.class, cls);
      assert.equal(err.command, cls);
      assert.equal(err.desc, `desc of ${cls}`);
      assert.match(err.message, new RegExp(`^QMP ${cls}: ${cls}: desc of ${cls}$`));
    }
  });

  it('times out a command QEMU never answers and drops the late reply quietly', async (t) => {
    let held: { cmd: Command; peer: Peer } | undefined;
    const fake = await fakeQmp(t, {
      onCommand: (cmd, peer) => {
        if (cmd.execute === 'slow') held = { cmd, peer };
        else peer.reply(cmd, cmd.execute);
      },
    });
    const log = capturingLogger();
    const mon = await connect(t, fake.path, log);
    const started = Date.now();
    const err = await mon.execute('slow', undefined, { timeoutMs: 150 }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpTimeout);
    assert.equal(err.command, 'slow');
    assert.equal(err.timeoutMs, 150);
    assert.ok(Date.now() - started >= 140);
    held!.peer.reply(held!.cmd, 'too late');
    assert.equal(await mon.execute('next'), 'next');
    assert.ok(log.lines.some((l) => l.level === 'debug' && /late QMP reply/.test(l.msg)));
    assert.ok(!log.lines.some((l) => l.level === 'warn'));
    assert.ok(mon.isOpen);
  });

  it('treats a non-JSON line as a protocol error: pending commands fail and the connection closes', async (t) => {
    const fake = await fakeQmp(t, { onCommand: (_cmd, peer) => peer.send('this is not json\r\n') });
    const mon = await connect(t, fake.path);
    const waiting = mon.waitForEvent('SHUTDOWN').catch((e: unknown) => e);
    const err = await mon.execute('query-status').catch((e: unknown) => e);
    assert.ok(err instanceof QmpProtocolError);
    assert.equal(err.command, 'query-status');
    assert.match(err.desc, /not JSON: this is not json/);
    assert.deepEqual((await mon.closed).reason, 'protocol');
    assert.ok((await waiting) instanceof QmpProtocolError);
    assert.ok((await mon.execute('again').catch((e: unknown) => e)) instanceof QmpProtocolError);
  });

  it('treats JSON that is not an object as a protocol error', async (t) => {
    const fake = await fakeQmp(t, { onCommand: (_cmd, peer) => peer.send('[1,2]\r\n') });
    const mon = await connect(t, fake.path);
    const err = await mon.execute('query-status').catch((e: unknown) => e);
    assert.ok(err instanceof QmpProtocolError);
    assert.match(err.desc, /not a JSON object/);
  });

  it('rejects a peer whose first message is not a QMP greeting', async (t) => {
    const fake = await fakeQmp(t, { greeting: '{"hello": "I am QGA"}\r\n' });
    const err = await QmpMonitor.connect(fake.path, { timeoutMs: 1000 }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpProtocolError);
    assert.match(err.desc, /expected the QMP greeting/);
  });

  it('times out a handshake without greeting, hinting at a second client', async (t) => {
    const fake = await fakeQmp(t, { greeting: null });
    const err = await QmpMonitor.connect(fake.path, { timeoutMs: 150 }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpTimeout);
    assert.match(err.desc, /no QMP greeting within 150 ms.*another client/);
  });

  it('fails with QmpClosed (ENOENT) when nothing listens, after the retries', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'kumo-qmpnone-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'absent.sock');
    const started = Date.now();
    const err = await QmpMonitor.connect(path, { retry: { attempts: 3, delayMs: 30 } }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpClosed);
    assert.equal(err.code, 'ENOENT');
    assert.match(err.message, /cannot connect to .*absent\.sock: ENOENT/);
    assert.ok(Date.now() - started >= 55, 'waited between attempts');

    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('qemu exited')), 50);
    const aborted = await QmpMonitor.connect(path, { retry: { attempts: 1000, delayMs: 10 }, signal: ac.signal })
      .catch((e: unknown) => e);
    assert.equal((aborted as Error).message, 'qemu exited');
  });

  it('rejects pending commands and event waits with QmpClosed when the peer hangs up', async (t) => {
    const fake = await fakeQmp(t, { onCommand: (_cmd, peer) => peer.socket.end() });
    const mon = await connect(t, fake.path);
    const waiting = mon.waitForEvent('RESUME').catch((e: unknown) => e);
    const closes: string[] = [];
    mon.onClose((info) => closes.push(info.reason));
    const err = await mon.execute('cont').catch((e: unknown) => e);
    assert.ok(err instanceof QmpClosed);
    assert.equal(err.command, 'cont');
    assert.equal((await mon.closed).reason, 'remote');
    assert.ok((await waiting) instanceof QmpClosed);
    assert.deepEqual(closes, ['remote']);
    assert.equal(mon.isOpen, false);
  });

  it('close() rejects what is pending, resolves `closed` as local and leaves the server listening', async (t) => {
    const fake = await fakeQmp(t, { onCommand: () => {} });
    const mon = await connect(t, fake.path);
    const pending = mon.execute('never').catch((e: unknown) => e);
    await mon.close();
    assert.ok((await pending) instanceof QmpClosed);
    assert.equal((await mon.closed).reason, 'local');
    assert.ok((await mon.execute('after').catch((e: unknown) => e)) instanceof QmpClosed);
    let late = '';
    mon.onClose((info) => { late = info.reason; });
    await sleep(0);
    assert.equal(late, 'local', 'a close listener added afterwards still hears about it');
    const again = await connect(t, fake.path);
    assert.ok(again.isOpen);
  });
});

describe('QMP events', () => {
  it('delivers events by name and to *, with data and timestamp defaults, surviving a throwing listener', async (t) => {
    const fake = await fakeQmp(t, {
      onCommand: (cmd, peer) => {
        peer.event('MIGRATION', { status: 'active' });
        peer.send({ event: 'POWERDOWN' }); // no data, no timestamp
        peer.reply(cmd);
      },
    });
    const mon = await connect(t, fake.path);
    const named: string[] = [];
    const all: string[] = [];
    mon.on('MIGRATION', () => { throw new Error('listener bug'); });
    const off = mon.on('MIGRATION', (e) => named.push(e.data.status));
    mon.on('*', (e) => all.push(`${e.event}:${JSON.stringify(e.data)}:${e.timestamp.seconds}`));
    await mon.execute('x');
    off();
    await mon.execute('y');
    assert.deepEqual(named, ['active']);
    assert.deepEqual(all, [
      'MIGRATION:{"status":"active"}:1700000000', 'POWERDOWN:{}:-1',
      'MIGRATION:{"status":"active"}:1700000000', 'POWERDOWN:{}:-1',
    ]);
  });

  it('waitForEvent honours the predicate and times out with QmpTimeout', async (t) => {
    const fake = await fakeQmp(t, {
      onCommand: (cmd, peer) => {
        for (const status of ['setup', 'active', 'completed']) peer.event('MIGRATION', { status });
        peer.reply(cmd);
      },
    });
    const mon = await connect(t, fake.path);
    const done = mon.waitForEvent('MIGRATION', { predicate: (e) => e.data.status === 'completed' });
    await mon.execute('migrate');
    assert.equal((await done).data.status, 'completed');
    const err = await mon.waitForEvent('RESUME', { timeoutMs: 50 }).catch((e: unknown) => e);
    assert.ok(err instanceof QmpTimeout);
    assert.match(err.desc, /no RESUME event within 50 ms/);
  });

  it('warns about replies it cannot match instead of failing', async (t) => {
    const fake = await fakeQmp(t, {
      onCommand: (cmd, peer) => {
        peer.send({ return: {}, id: 9999 });
        peer.send({ error: { class: 'GenericError', desc: 'JSON parse error, expecting value' } });
        peer.send({ something: 'new' });
        peer.reply(cmd, 'ok');
      },
    });
    const log = capturingLogger();
    const mon = await connect(t, fake.path, log);
    assert.equal(await mon.execute('x'), 'ok');
    const warnings = log.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
    assert.deepEqual(warnings, [
      'QMP reply with unknown id dropped', 'QMP reply without id ignored', 'QMP message of unknown shape ignored',
    ]);
  });

  it('keeps secrets out of the wire log', async (t) => {
    const fake = await fakeQmp(t, { onCommand: (cmd, peer) => peer.reply(cmd) });
    const log = capturingLogger();
    const mon = await connect(t, fake.path, log);
    await mon.execute('object-add', { 'qom-type': 'secret', id: 's0', data: 'hunter2' });
    assert.ok(!JSON.stringify(log.lines).includes('hunter2'));
    assert.ok(JSON.stringify(log.lines).includes('<redacted>'));
  });
});

describe('QMP typed commands', () => {
  function recorder(reply: (cmd: string) => unknown = () => ({})): QmpExecutor & { calls: unknown[][] } {
    const calls: unknown[][] = [];
    return {
      calls,
      async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
        calls.push(args === undefined ? [command] : [command, args]);
        const r = reply(command);
        if (r instanceof Error) throw r;
        return r as T;
      },
    };
  }

  it('shapes arguments as QEMU 7.2 expects them', async () => {
    const ex = recorder();
    const c = new QmpCommands(ex);
    await c.migrateSetCapabilities({ events: true, 'auto-converge': false });
    await c.migrateSetParameters({ 'downtime-limit': 300, 'max-bandwidth': 1 << 30 });
    await c.migrate('tcp:10.0.0.2:4444');
    await c.migrateIncoming('defer');
    await c.calcDirtyRate({ 'calc-time': 1, 'sample-pages': 256 });
    await c.announceSelf({ initial: 50, max: 550, rounds: 5, step: 100 });
    await c.humanMonitorCommand('info registers', { cpuIndex: 1 });
    await c.deviceDel('disk1');
    await c.blockdevDel('node1');
    await c.objectDel('iothread0');
    assert.deepEqual(ex.calls, [
      ['migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }, { capability: 'auto-converge', state: false }] }],
      ['migrate-set-parameters', { 'downtime-limit': 300, 'max-bandwidth': 1 << 30 }],
      ['migrate', { uri: 'tcp:10.0.0.2:4444' }],
      ['migrate-incoming', { uri: 'defer' }],
      ['calc-dirty-rate', { 'calc-time': 1, 'sample-pages': 256 }],
      ['announce-self', { initial: 50, max: 550, rounds: 5, step: 100 }],
      ['human-monitor-command', { 'command-line': 'info registers', 'cpu-index': 1 }],
      ['device_del', { id: 'disk1' }],
      ['blockdev-del', { 'node-name': 'node1' }],
      ['object-del', { id: 'iothread0' }],
    ]);
  });

  it('quit counts a connection lost before the reply as done, but not other errors', async () => {
    await new QmpCommands(recorder(() => new QmpClosed('gone', 'quit'))).quit();
    const err = await new QmpCommands(recorder(() => new QmpGenericError('no', 'quit'))).quit().catch((e: unknown) => e);
    assert.ok(err instanceof QmpGenericError);
  });
});
