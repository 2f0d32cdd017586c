/**
 * The NBD wire format and byte plumbing, property-tested: every encoder round-trips through its
 * decoder, decoders refuse wrong magics and inconsistent lengths, ByteQueue hands out the bytes
 * pushed whatever the chunking, SyncBatcher coalesces without losing a sync, errno mapping.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import { ByteQueue } from '../../src/storage/nbd/bytes.js';
import { BlockError, SyncBatcher, nbdErrnoOf, type NbdLogger } from '../../src/storage/nbd/index.js';
import {
  INFO, NBD_ERR, OPTION_REPLY_HEADER_SIZE, REQUEST_SIZE, SIMPLE_REPLY_SIZE, decodeGreeting, decodeInfoReply,
  decodeInfoRequest, decodeOptionHeader, decodeOptionReplyHeader, decodeRequest, decodeServerEntry,
  decodeSimpleReply, encodeExportNameReply, encodeGreeting, encodeInfoReply, encodeInfoRequest, encodeOption,
  encodeOptionReply, encodeRequest, encodeServerEntry, encodeSimpleReply, readU64, writeU64,
} from '../../src/storage/nbd/protocol.js';

// The agent passes its pino logger straight in; this fails to compile if that stops fitting.
const _pinoFits: NbdLogger = pino({ level: 'silent' });
void _pinoFits;

const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64n = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const name = fc.string({ unit: 'grapheme', maxLength: 64 });

describe('NBD protocol encoders and decoders', () => {
  it('64-bit numbers round-trip below 2^53 and are big-endian', () => {
    fc.assert(fc.property(safe, (v) => {
      const b = Buffer.alloc(8);
      writeU64(b, v, 0);
      assert.equal(readU64(b, 0), v);
      assert.equal(b.readBigUInt64BE(0), BigInt(v));
    }));
  });

  it('request headers round-trip', () => {
    const req = fc.record({ flags: u16, type: u16, handle: u64n, offset: safe, length: u32 });
    fc.assert(fc.property(req, fc.nat({ max: 64 }), (r, at) => {
      const b = Buffer.alloc(at + REQUEST_SIZE);
      encodeRequest(r, b, at);
      assert.deepEqual(decodeRequest(b, at), { ...r });
      assert.equal(b.readUInt32BE(at), 0x25609513);
    }));
  });

  it('decodeRequest refuses any other magic', () => {
    fc.assert(fc.property(u32.filter((m) => m !== 0x25609513), (magic) => {
      const b = encodeRequest({ flags: 0, type: 0, handle: 1n, offset: 0, length: 1 });
      b.writeUInt32BE(magic, 0);
      assert.equal(decodeRequest(b), null);
    }));
  });

  it('simple replies round-trip and other magics are refused', () => {
    fc.assert(fc.property(u32, u64n, (error, handle) => {
      const b = encodeSimpleReply(error, handle);
      assert.equal(b.length, SIMPLE_REPLY_SIZE);
      assert.deepEqual(decodeSimpleReply(b), { error, handle });
      b.writeUInt32BE(0x668e33ef, 0); // a structured reply: not what this client negotiates
      assert.equal(decodeSimpleReply(b), null);
    }));
  });

  it('greetings, options and option replies round-trip', () => {
    fc.assert(fc.property(u16, u32, u32, fc.uint8Array({ maxLength: 300 }), (flags, option, type, data) => {
      assert.equal(decodeGreeting(encodeGreeting(flags)), flags);
      const o = encodeOption(option, Buffer.from(data));
      assert.deepEqual(decodeOptionHeader(o), { option, length: data.length });
      assert.ok(o.subarray(16).equals(Buffer.from(data)));
      const r = encodeOptionReply(option, type, Buffer.from(data));
      assert.deepEqual(decodeOptionReplyHeader(r), { option, type, length: data.length });
      assert.ok(r.subarray(OPTION_REPLY_HEADER_SIZE).equals(Buffer.from(data)));
    }));
    const g = encodeGreeting(3);
    g[15] ^= 1;
    assert.equal(decodeGreeting(g), null);
    assert.equal(decodeOptionHeader(Buffer.alloc(16)), null);
  });

  it('INFO/GO requests round-trip; inconsistent lengths are refused', () => {
    fc.assert(fc.property(name, fc.array(u16, { maxLength: 20 }), (n, requests) => {
      const b = encodeInfoRequest({ name: n, requests });
      assert.deepEqual(decodeInfoRequest(b), { name: n, requests });
      assert.equal(decodeInfoRequest(Buffer.concat([b, Buffer.from([0])])), null);
      assert.equal(decodeInfoRequest(b.subarray(0, b.length - 1)), null);
    }));
  });

  it('INFO replies and NBD_REP_SERVER entries round-trip', () => {
    fc.assert(fc.property(safe, u16, u32, u32, u32, name, name, (size, flags, min, preferred, max, n, d) => {
      assert.deepEqual(decodeInfoReply(encodeInfoReply({ type: INFO.EXPORT, size, flags })), { type: INFO.EXPORT, size, flags });
      assert.deepEqual(decodeInfoReply(encodeInfoReply({ type: INFO.BLOCK_SIZE, min, preferred, max })), { type: INFO.BLOCK_SIZE, min, preferred, max });
      assert.deepEqual(decodeInfoReply(encodeInfoReply({ type: INFO.NAME, name: n })), { type: INFO.NAME, name: n });
      assert.deepEqual(decodeServerEntry(encodeServerEntry(n, d)), { name: n, description: d });
    }));
    assert.equal(decodeInfoReply(Buffer.from([0, 0, 1])), null); // NBD_INFO_EXPORT must be 12 bytes
  });

  it('the EXPORT_NAME answer is 134 bytes, or 10 with NO_ZEROES', () => {
    fc.assert(fc.property(safe, u16, fc.boolean(), (size, flags, noZeroes) => {
      const b = encodeExportNameReply(size, flags, noZeroes);
      assert.equal(b.length, noZeroes ? 10 : 134);
      assert.equal(readU64(b, 0), size);
      assert.equal(b.readUInt16BE(8), flags);
      assert.ok(b.subarray(10).every((x) => x === 0));
    }));
  });
});

describe('ByteQueue', () => {
  it('returns the bytes pushed, in order, whatever the chunking and the read sizes', () => {
    fc.assert(fc.property(
      fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 30 }),
      fc.array(fc.record({ n: fc.nat({ max: 60 }), skip: fc.boolean() }), { maxLength: 40 }),
      (chunks, reads) => {
        const q = new ByteQueue();
        const all = Buffer.concat(chunks.map((c) => Buffer.from(c)));
        chunks.forEach((c) => q.push(Buffer.from(c)));
        let at = 0;
        for (const { n, skip } of reads) {
          const k = Math.min(n, q.length);
          if (skip) q.skip(k);
          else assert.ok(q.take(k).equals(all.subarray(at, at + k)));
          at += k;
          assert.equal(q.length, all.length - at);
        }
        assert.ok(q.drain().equals(all.subarray(at)));
      },
    ));
  });
});

describe('SyncBatcher', () => {
  it('runs one sync at a time and never answers a caller with a sync that started before it asked', async () => {
    let running = 0;
    let started = 0;
    const log: { start: number; end: number }[] = [];
    const b = new SyncBatcher(async () => {
      assert.equal(running++, 0, 'concurrent syncs');
      const rec = { start: ++started, end: 0 };
      await new Promise((r) => setTimeout(r, 5));
      rec.end = started;
      log.push(rec);
      running--;
    });
    const asks: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      const startedBefore = started;
      asks.push(b.sync().then(() => {
        // The sync that answered started after this call (or was started by it).
        assert.ok(log[log.length - 1].start > startedBefore);
      }));
      if (i % 5 === 0) await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(asks);
    assert.ok(started < 20, `coalesced: ${started} syncs for 20 requests`);
  });

  it('passes a failure to every caller waiting on that sync', async () => {
    let n = 0;
    const b = new SyncBatcher(async () => {
      n++;
      throw Object.assign(new Error('EIO'), { code: 'EIO' });
    });
    const r = await Promise.allSettled([b.sync(), b.sync(), b.sync()]);
    assert.ok(r.every((x) => x.status === 'rejected'));
    assert.equal(n, 2);
  });
});

describe('backend error mapping', () => {
  it('maps errno codes to the NBD error values', () => {
    assert.equal(nbdErrnoOf(new BlockError('ENOSPC')), NBD_ERR.ENOSPC);
    assert.equal(nbdErrnoOf({ code: 'EFBIG' }), NBD_ERR.ENOSPC);
    assert.equal(nbdErrnoOf({ code: 'EACCES' }), NBD_ERR.EPERM);
    assert.equal(nbdErrnoOf({ code: 'EOPNOTSUPP' }), NBD_ERR.ENOTSUP);
    assert.equal(nbdErrnoOf({ code: 'ESHUTDOWN' }), NBD_ERR.ESHUTDOWN);
    assert.equal(nbdErrnoOf({ code: 'EWHATEVER' }), NBD_ERR.EIO);
    assert.equal(nbdErrnoOf('a string'), NBD_ERR.EIO);
    assert.equal(nbdErrnoOf(null), NBD_ERR.EIO);
  });
});
