import type { Command } from 'commander';
import { int } from '../../util.js';
import { act, group, seconds } from '../command.js';

const COLUMNS = ['requestId', 'method', 'resourceId', 'status', 'progress', 'message', 'createdAt'];

// The image commands live in image.ts; index.ts imports them from here.
export { imageCommands } from './image.js';

export function requestCommands(program: Command): void {
  const req = group(program, 'request', 'async requests (start, stop, migrate …): follow, list, cancel');
  req.command('show').description('show a request: status, progress, result or error').argument('<request>', 'request id (req-…)')
    .action(act(async (c, [requestId]) => c.print(await c.call('getRequestIdInfo', { requestId }))));
  req.command('list').description('list recent requests, newest first')
    .option('--resource <id>', 'only requests on this resource (vm-…, vol-…, host-…)')
    .option('--status <status>', 'only requests in this status: queued, running, succeeded, failed or cancelled')
    .option('--limit <n>', 'at most this many (default 100)', int)
    .action(act(async (c, _, o) => c.print(await c.call('getRequestList', { filter: { resourceId: o.resource, status: o.status, limit: o.limit } }), COLUMNS)));
  req.command('wait').description('follow a request with a progress display until it ends, then print it (exit 0 only if it succeeded)')
    .argument('<request>', 'request id')
    .option('--timeout <seconds>', 'stop waiting after this many seconds (exit 1; the request goes on)', seconds)
    .action(act(async (c, [requestId]) => c.wait(requestId)));
  req.command('cancel').description('drop a queued request, or roll back a running one where its method allows').argument('<request>', 'request id')
    .action(act(async (c, [requestId]) => { await c.call('cancelRequest', { requestId }); c.done(`${requestId} cancelled`); }));
}
