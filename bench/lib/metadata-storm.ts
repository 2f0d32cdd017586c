/**
 * The clients of bench/metadata, run as their own process (forked by bench/metadata.ts) so that they
 * never share an event loop with the service they measure. For each storm the parent sends a
 * StormConfig: one target (a 127.0.0.1 port, which is the VM's identity) per client. Every client
 * then crawls the OpenStack tree as cloud-init's OpenStack datasource does: the paths one after
 * another, a new connection for each (cloud-init's readurl opens a new session per URL). All clients
 * are started in the same tick, so the service sees them at once. Each request's latency runs from
 * http.get() to the response's last byte (so it includes the TCP connect), measured with hrtime.
 *
 * Protocol: StormConfig in, StormResult out, as many times as the parent likes; the child exits
 * when the IPC channel closes.
 */
import http from 'node:http';

export interface StormTarget {
  port: number;
  /** Expected `uuid` in meta_data.json: a different one is counted as an error (wrong identity). null: not checked. */
  vmId: string | null;
}

export interface StormConfig {
  targets: StormTarget[];
  paths: string[];
  /** A request still unanswered after this long is abandoned and counted as an error. */
  timeoutMs: number;
}

export interface StormResult {
  /** Latency of every request that got a response (any status), ms. */
  latMs: number[];
  /** Per client: from the release of the storm to the last byte of its last answer, ms (clients with an error included). */
  crawlMs: number[];
  requests: number;
  errors: number;
  errorKinds: Record<string, number>;
  errorSample: string;
  /** From the release to the last answer of the last client, ms. */
  wallMs: number;
  /** CPU this process used during the storm, in % of one core. */
  clientCpuPct: number;
  /** Bytes of response bodies received. */
  bytes: number;
}

const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;

function get(port: number, path: string, timeoutMs: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    // agent: false: a connection of its own, closed after the answer (Connection: close).
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { 'user-agent': 'Cloud-Init/bench', accept: '*/*' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

async function storm(c: StormConfig): Promise<StormResult> {
  const latMs: number[] = [];
  const crawlMs = new Array<number>(c.targets.length).fill(0);
  const errorKinds: Record<string, number> = {};
  let errors = 0, requests = 0, bytes = 0, errorSample = '';
  const fail = (kind: string, sample: string) => {
    errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
    if (!errorSample) errorSample = `${kind}: ${sample.slice(0, 200)}`;
  };

  const crawl = async (t: StormTarget, i: number, released: bigint) => {
    for (const path of c.paths) {
      const t0 = process.hrtime.bigint();
      requests++;
      try {
        const r = await get(t.port, path, c.timeoutMs);
        latMs.push(ms(t0));
        bytes += r.body.length;
        if (r.status !== 200) { fail(`HTTP ${r.status}`, `${path}: ${r.body.toString('utf8')}`); continue; }
        if (t.vmId !== null && path.endsWith('/meta_data.json')) {
          const uuid = (JSON.parse(r.body.toString('utf8')) as { uuid?: string }).uuid;
          if (uuid !== t.vmId) fail('wrong identity', `port ${t.port} answered for ${uuid}, expected ${t.vmId}`);
        }
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        fail(err.code ?? (err.message.startsWith('timeout') ? 'timeout' : 'error'), `${path}: ${err.message}`);
      }
    }
    crawlMs[i] = ms(released);
  };

  const cpu0 = process.cpuUsage();
  const released = process.hrtime.bigint();
  // Every client starts its first request in this one synchronous loop: released at once.
  await Promise.all(c.targets.map((t, i) => crawl(t, i, released)));
  const wallMs = ms(released);
  const cpu = process.cpuUsage(cpu0);
  return {
    latMs, crawlMs, requests, errors, errorKinds, errorSample, wallMs, bytes,
    clientCpuPct: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
  };
}

process.on('message', (m: StormConfig) => {
  storm(m).then((r) => process.send!(r), (e: unknown) => { console.error(e); process.exit(1); });
});
process.on('disconnect', () => process.exit(0));
