/**
 * The load generator of bench/api, run as its own process (forked by bench/api.ts) so that it never
 * shares an event loop with the server it measures. `concurrency` loops each keep one request in
 * flight over a keep-alive http.Agent, pick a random VM id per request, and record every latency
 * (process.hrtime, nanoseconds) into a preallocated array. A warm-up (not recorded) lets both sides
 * JIT before the measured window; only requests that complete inside the window count.
 *
 * Protocol: the parent sends one LoadConfig message; the child answers with one LoadResult and exits.
 */
import http from 'node:http';
import { summarize, type LatencySummary } from './stats.js';

export type Check = 'xmlrpc' | 'json' | 'status';

export interface LoadConfig {
  host: string; port: number;
  method: 'GET' | 'POST';
  /** `{id}` is replaced by a random id from `ids`. */
  path: string;
  /** `{id}` is replaced by the same id; omitted for GET. */
  body?: string;
  headers: Record<string, string>;
  ids: string[];
  concurrency: number; seconds: number; warmupSeconds: number;
  /** What a good answer is: HTTP 200 and, for xmlrpc, no <fault>; for json, an object body. */
  check: Check;
}

export interface LoadResult extends LatencySummary {
  requests: number; seconds: number; rps: number;
  errors: number; errorKinds: Record<string, number>; errorSample: string;
  /** CPU the load generator itself used during the window, in % of one core. */
  clientCpuPct: number;
  /** Requests completed beyond the preallocated latency array (counted, not in the percentiles). */
  unrecorded: number;
}

function run(c: LoadConfig): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: c.concurrency, maxFreeSockets: c.concurrency });
  const n = c.ids.length;
  const [pre, post] = c.path.split('{id}');
  const paths = c.ids.map((id) => post === undefined ? pre : pre + encodeURIComponent(id) + post);
  const bodies = c.body === undefined ? null : c.ids.map((id) => Buffer.from(c.body!.replaceAll('{id}', id), 'utf8'));
  const headers = c.ids.map((_, i) => (bodies ? { ...c.headers, 'content-length': String(bodies[i].length) } : c.headers));

  // 200k req/s is far above what one Node client reaches here; past it requests are counted, not timed.
  const capacity = Math.max(1, Math.ceil(200_000 * c.seconds));
  const lat = new Float64Array(capacity);
  let recorded = 0, completed = 0, unrecorded = 0, errors = 0;
  const errorKinds: Record<string, number> = {};
  let errorSample = '';
  const fail = (kind: string, sample: string) => {
    errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    if (!errorSample) errorSample = `${kind}: ${sample.slice(0, 300)}`;
  };

  let phase: 'warmup' | 'measure' | 'stop' = 'warmup';
  let windowStart = 0n, windowEnd = 0n;
  let cpuAtStart = process.cpuUsage();
  let cpuInWindow = { user: 0, system: 0 };
  let inFlight = 0;

  return new Promise((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      agent.destroy();
      const seconds = Number(windowEnd - windowStart) / 1e9;
      resolve({
        requests: completed, seconds, rps: completed / seconds,
        ...summarize(lat.subarray(0, recorded)),
        errors, errorKinds, errorSample,
        clientCpuPct: ((cpuInWindow.user + cpuInWindow.system) / 1e6 / seconds) * 100,
        unrecorded,
      });
    };

    const done = (t0: bigint, ok: boolean, kind: string, sample: string) => {
      inFlight--;
      const t1 = process.hrtime.bigint();
      if (phase === 'measure' && t0 >= windowStart) {
        completed++;
        if (ok) {
          if (recorded < capacity) lat[recorded++] = Number(t1 - t0); else unrecorded++;
        } else fail(kind, sample);
      }
      if (phase === 'stop') { if (inFlight === 0) finish(); return; }
      if (ok) fire(); else setTimeout(fire, kind === 'socket' ? 10 : 0);
    };

    const fire = () => {
      const i = (Math.random() * n) | 0;
      inFlight++;
      const t0 = process.hrtime.bigint();
      const req = http.request({ agent, host: c.host, port: c.port, method: c.method, path: paths[i], headers: headers[i] }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => { body += chunk; });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status !== 200) return done(t0, false, `http ${status}`, body);
          if (c.check === 'xmlrpc' && body.includes('<fault>')) {
            const code = /<name>faultCode<\/name>\s*<value>\s*<int>(-?\d+)/.exec(body)?.[1] ?? '?';
            return done(t0, false, `fault ${code}`, body);
          }
          if (c.check === 'json' && body.charCodeAt(0) !== 0x7b /* { */) return done(t0, false, 'not json', body);
          done(t0, true, '', '');
        });
        res.on('error', (e) => done(t0, false, 'socket', e.message));
      });
      req.on('error', (e) => done(t0, false, 'socket', e.message));
      req.end(bodies ? bodies[i] : undefined);
    };

    for (let k = 0; k < c.concurrency; k++) fire();
    setTimeout(() => {
      phase = 'measure';
      windowStart = process.hrtime.bigint();
      cpuAtStart = process.cpuUsage();
      process.send!({ mark: 'start' });
      setTimeout(() => {
        windowEnd = process.hrtime.bigint();
        cpuInWindow = process.cpuUsage(cpuAtStart);
        phase = 'stop';
        process.send!({ mark: 'end' });
        // Requests still in flight are not counted; give them a moment to drain so sockets close cleanly.
        setTimeout(finish, 5000).unref();
        if (inFlight === 0) finish();
      }, c.seconds * 1000);
    }, c.warmupSeconds * 1000);
  });
}

process.once('message', (msg) => {
  run(msg as LoadConfig).then((r) => process.send!(r, () => process.exit(0)), (e: Error) => {
    process.send!({ fatal: e.message }, () => process.exit(1));
  });
});
