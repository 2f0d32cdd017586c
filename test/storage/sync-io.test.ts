/**
 * SyncIoPolicy: when small file I/O runs on the event loop. A lone slow call (a preemption on a
 * busy host) changes nothing; a burst of slow calls, or one very slow call, sends I/O to the
 * thread pool for a while; large requests never run synchronously; 'sync' and 'async' are fixed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SyncIoPolicy } from '../../src/storage/sync-io.js';

const KiB = 1024;

describe('SyncIoPolicy', () => {
  it('auto: small requests synchronously, large ones in the thread pool', () => {
    const p = new SyncIoPolicy();
    assert.equal(p.allowed(4 * KiB), true);
    assert.equal(p.allowed(256 * KiB), true);
    assert.equal(p.allowed(256 * KiB + 1), false);
    p.count(true);
    p.count(false);
    assert.deepEqual(p.stats, { syncOps: 1, poolOps: 1, slowSyncOps: 0 });
  });

  it('auto: a lone slow call changes nothing; two close together, or one very slow, switch to the pool', () => {
    const p = new SyncIoPolicy();
    p.observe(0.8);
    for (let i = 0; i < 40; i++) p.observe(0.01);
    p.observe(0.8);
    assert.equal(p.allowed(4 * KiB), true, 'two slow calls 40 apart are no burst');
    p.observe(0.8);
    assert.equal(p.allowed(4 * KiB), false, 'two within a few calls are');
    assert.equal(p.stats.slowSyncOps, 3);

    const q = new SyncIoPolicy();
    q.observe(6);
    assert.equal(q.allowed(4 * KiB), false, 'one call over 5 ms is the disk');
  });

  it('sync and async are fixed whatever the calls cost', () => {
    const s = new SyncIoPolicy('sync');
    const a = new SyncIoPolicy('async');
    for (let i = 0; i < 5; i++) { s.observe(50); a.observe(50); }
    assert.equal(s.allowed(1024 * KiB), true);
    assert.equal(a.allowed(1), false);
  });
});
