import cliProgress from 'cli-progress';
import { callOperation } from './call.js';
import type { RequestInfo } from '../../services/requests.js';
import type { Client } from './http.js';

export type { RequestInfo };

export const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

/** Shows a request's progress on stderr: a bar on a terminal, a line per change elsewhere (logs, CI). */
class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private last = '';

  constructor(private readonly quiet: boolean) {}

  update(r: RequestInfo): void {
    if (this.quiet) return;
    if (process.stderr.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar({
          stream: process.stderr, hideCursor: true, barsize: 30, format: `${r.requestId} [{bar}] {percentage}% {status} {message}`,
        }, cliProgress.Presets.shades_classic);
        this.bar.start(100, r.progress, { status: r.status, message: r.message });
      } else this.bar.update(r.progress, { status: r.status, message: r.message });
      return;
    }
    const line = `${r.requestId} ${r.status} ${r.progress}% ${r.message}`.trimEnd();
    if (line !== this.last) process.stderr.write(`${line}\n`);
    this.last = line;
  }

  stop(): void { this.bar?.stop(); this.bar = null; }
}

/**
 * Follows a request with `waitRequest` long-polls of a few seconds each — long enough not to
 * hammer the controller, short enough to move the progress display — until it ends or
 * `timeoutSeconds` pass. Returns the request as last seen.
 */
export async function follow(client: Client, requestId: string, o: { timeoutSeconds?: number; quiet?: boolean } = {}): Promise<RequestInfo> {
  const deadline = o.timeoutSeconds === undefined ? Infinity : Date.now() + o.timeoutSeconds * 1000;
  const progress = new Progress(o.quiet ?? false);
  const onInt = () => {
    progress.stop();
    process.stderr.write(`kumo: stopped waiting; ${requestId} goes on (kumo request wait ${requestId})\n`);
    process.exit(130);
  };
  process.once('SIGINT', onInt);
  try {
    let poll = 0;
    for (;;) {
      const r = await callOperation(client, 'waitRequest', { requestId, timeoutSeconds: poll }, (poll + 30) * 1000) as RequestInfo;
      progress.update(r);
      const left = deadline - Date.now();
      if (FINISHED.has(r.status) || left <= 0) return r;
      poll = Math.max(1, Math.min(2, Math.ceil(left / 1000)));
    }
  } finally {
    progress.stop();
    process.off('SIGINT', onInt);
  }
}
