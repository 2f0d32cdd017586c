import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Db } from '../state/db.js';

/** The controller's Prometheus metrics, served at /metrics. */
export class Metrics {
  readonly registry = new Registry();
  readonly apiSeconds = new Histogram({
    name: 'kumo_api_request_duration_seconds', help: 'API latency per transport and method',
    labelNames: ['transport', 'method', 'outcome'] as const, registers: [this.registry],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5],
  });
  readonly faults = new Counter({ name: 'kumo_api_faults_total', help: 'API faults by code', labelNames: ['transport', 'code'] as const, registers: [this.registry] });
  readonly schedulerSeconds = new Histogram({
    name: 'kumo_scheduler_placement_seconds', help: 'time to place one VM (snapshot + filters + weighers + reservation)',
    registers: [this.registry], buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5],
  });

  constructor(db: Db) {
    collectDefaultMetrics({ register: this.registry, prefix: 'kumo_' });
    new Gauge({
      name: 'kumo_requests', help: 'async requests by status', labelNames: ['status'] as const, registers: [this.registry],
      async collect() {
        const rows = await db.k.selectFrom('requests').select((eb) => ['status', eb.fn.countAll<number>().as('n')]).groupBy('status').execute();
        this.reset();
        for (const r of rows) this.set({ status: r.status }, Number(r.n));
      },
    });
  }
}
