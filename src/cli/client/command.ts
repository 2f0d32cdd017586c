import { Command, InvalidArgumentError, Option } from 'commander';
import { callOperation } from './call.js';
import { CliError, resolveConnection } from './connection.js';
import { Client } from './http.js';
import { text } from './render.js';
import { follow, type RequestInfo } from './wait.js';

export interface Ctx {
  client: Client;
  json: boolean;
  call(name: string, args?: Record<string, unknown>): Promise<unknown>;
  /** JSON as the API returned it, or its table rendering. */
  print(body: unknown, columns?: string[]): void;
  /** A confirmation for operations that answer 204: table output only, since JSON has nothing to show. */
  done(message: string): void;
  /** An async operation: its request id with --no-wait, else the request once it ends (exit 1 unless it succeeded). */
  submit(name: string, args: Record<string, unknown>): Promise<void>;
  /** Follows a request (showing progress) and prints it once it ends or --timeout passes; exit 1 unless it succeeded. */
  wait(requestId: string): Promise<void>;
}

type Action = (ctx: Ctx, args: any[], opts: Record<string, any>) => Promise<void>;

/** Usage errors exit 2 as scripts expect; commander has already printed the message. */
const usageExit = (e: { exitCode: number }) => process.exit(e.exitCode === 0 ? 0 : 2);

/** A command group (`kumo vm`, `kumo net` …) carrying the connection and output options its commands share. */
export function group(program: Command, name: string, description: string): Command {
  return program.command(name).description(description)
    .addOption(new Option('-o, --output <format>', 'table: aligned columns and key/value lines; json: the API\'s JSON unchanged, for scripts').choices(['table', 'json']).default('table'))
    .option('--url <url>', 'controller URL, e.g. http://127.0.0.1:8780 (else KUMO_URL, else DATA/credentials.json)')
    .option('--user <name>', 'API user (else KUMO_USER, else DATA/credentials.json)')
    .option('--key <key>', 'API key of that user (else KUMO_KEY, else DATA/credentials.json)')
    .option('--data <dir>', 'data directory of `kumo up`, whose credentials.json is read when flags and KUMO_* do not say', './data')
    .addOption(new Option('--as <user>', 'which user of credentials.json to act as (default: admin)').choices(['admin', 'tenant']))
    .configureHelp({ ...program.configureHelp(), showGlobalOptions: true })
    .showHelpAfterError('(add --help for usage)')
    .exitOverride(usageExit);
}

/** Options of commands that start an async request. */
export const asyncOptions = (c: Command) => c
  .option('--no-wait', 'print the request id and return at once instead of following the request')
  .option('--timeout <seconds>', 'stop waiting after this many seconds (exit 1; the request goes on)', seconds);

export function seconds(v: string): number {
  if (!/^\d+(\.\d+)?$/.test(v)) throw new InvalidArgumentError('not a number of seconds');
  return Number(v);
}

function context(opts: Record<string, any>): Ctx {
  const client = new Client(resolveConnection(opts));
  const json = opts.output === 'json';
  const out = (s: string) => { process.stdout.write(s); };
  const ctx: Ctx = {
    client, json,
    call: (name, args = {}) => callOperation(client, name, args),
    print: (body, columns) => out(json ? `${JSON.stringify(body, null, 2)}\n` : text(body, columns)),
    done: (message) => { if (!json) out(`${message}\n`); },
    async submit(name, args) {
      const started = await ctx.call(name, args) as { requestId: string };
      if (opts.wait === false) return ctx.print(started);
      return ctx.wait(started.requestId);
    },
    async wait(requestId) {
      const r: RequestInfo = await follow(client, requestId, { timeoutSeconds: opts.timeout });
      ctx.print(r);
      if (r.status === 'succeeded') return;
      process.exitCode = 1;
      const why = r.status === 'queued' || r.status === 'running'
        ? `still ${r.status} after ${opts.timeout} s; it goes on (kumo request wait ${r.requestId})`
        : `${r.status}${r.error?.message ? `: ${r.error.message}` : ''}`;
      process.stderr.write(`kumo: ${r.requestId} (${r.method}) ${why}\n`);
    },
  };
  return ctx;
}

/** Wraps a command body: builds its context, and turns every failure into one `kumo: …` line. */
export function act(fn: Action) {
  return async (...a: unknown[]) => {
    const cmd = a[a.length - 1] as Command;
    const opts = cmd.optsWithGlobals();
    try {
      await fn(context(opts), a.slice(0, -2), opts);
    } catch (e) {
      const err = e as Error;
      process.stderr.write(`kumo: ${err.message}\n`);
      process.exitCode = e instanceof CliError ? e.exitCode : 1;
    }
  };
}
