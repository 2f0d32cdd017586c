import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makePolicy, place } from '../../src/scheduler/index.js';
import { host, vm } from './gen.js';

const used = (g: [number, number], be: [number, number]) => ({
  guaranteed: { vcpus: g[0], memoryMiB: g[1] }, bestEffort: { vcpus: be[0], memoryMiB: be[1] },
});

test('spread: the host with the most free memory fraction after placement wins', () => {
  const hosts = [
    host({ hostId: 'a', memoryMiB: 8192, used: used([0, 4096], [0, 0]) }), // 50% free
    host({ hostId: 'b', memoryMiB: 65536, used: used([0, 16384], [0, 0]) }), // 75% free
  ];
  assert.deepEqual(place({ hosts }, vm()), { ok: true, hostId: 'b' });
});

test('spread: free vCPU breaks a memory tie', () => {
  const hosts = [
    host({ hostId: 'a', vcpus: 16, used: used([8, 0], [0, 0]) }),
    host({ hostId: 'b', vcpus: 16, used: used([4, 0], [0, 0]) }),
  ];
  assert.deepEqual(place({ hosts }, vm()), { ok: true, hostId: 'b' });
});

test('a full tie goes to the smallest hostId, whatever the host order', () => {
  const hosts = [host({ hostId: 'c' }), host({ hostId: 'a' }), host({ hostId: 'b' })];
  assert.deepEqual(place({ hosts }, vm()), { ok: true, hostId: 'a' });
  assert.deepEqual(place({ hosts: [...hosts].reverse() }, vm()), { ok: true, hostId: 'a' });
});

test('a negative memory weight packs instead of spreading', () => {
  const hosts = [
    host({ hostId: 'a', memoryMiB: 8192, used: used([0, 4096], [0, 0]) }),
    host({ hostId: 'b', memoryMiB: 65536, used: used([0, 16384], [0, 0]) }),
  ];
  const pack = makePolicy({ weighers: [{ name: 'freeMemory', weight: -1 }] });
  assert.deepEqual(place({ hosts }, vm(), pack), { ok: true, hostId: 'a' });
});

test('best-effort memory counts at 1/ratio when weighing', () => {
  // Under memory 2:1, a's 8 GiB of best-effort costs 4 GiB of physical memory: 75% free vs b's 60%.
  const hosts = [
    host({ hostId: 'a', memoryMiB: 16384, used: used([0, 0], [0, 8192]) }),
    host({ hostId: 'b', memoryMiB: 16384, used: used([0, 6554], [0, 0]) }),
  ];
  assert.deepEqual(place({ hosts }, vm({ memoryMiB: 1 }), makePolicy({ overcommit: { memory: 2 } })), { ok: true, hostId: 'a' });
  assert.deepEqual(place({ hosts }, vm({ memoryMiB: 1 })), { ok: true, hostId: 'b' });
});
