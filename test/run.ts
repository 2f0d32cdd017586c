/**
 * `npm test`: one throwaway PostgreSQL cluster for the whole run (the state and service suites
 * run on it as well as on SQLite), then `node --test` over the compiled test files.
 * Usage: node dist/test/run.js [FILE_OR_DIR ...]   (paths under dist/test, or their test/ sources)
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPostgres } from './helpers/postgres.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith('.test.js') ? [p] : [];
  });
}

/** `test/x/y.test.ts` and `dist/test/x` both name compiled files, so either spelling works. */
function toDist(arg: string): string {
  const abs = resolve(arg);
  const rel = relative(root, abs);
  if (rel === 'test' || rel.startsWith('test/')) return join(root, 'dist', rel).replace(/\.ts$/, '.js');
  return abs;
}

function selectFiles(args: string[]): string[] {
  const all = walk(here).sort();
  if (args.length === 0) return all;
  return args.flatMap((a) => {
    const p = toDist(a);
    if (!existsSync(p)) throw new Error(`no such test path: ${a} (looked for ${relative(process.cwd(), p)}; did you build?)`);
    const picked = statSync(p).isDirectory() ? all.filter((f) => f.startsWith(p + '/')) : [p];
    if (picked.length === 0) throw new Error(`no *.test.js under ${a}`);
    return picked;
  }).filter((f, i, xs) => xs.indexOf(f) === i);
}

async function main(): Promise<number> {
  const files = selectFiles(process.argv.slice(2));
  const pg = await startPostgres();
  let child: ReturnType<typeof spawn> | null = null;
  let signalled: NodeJS.Signals | null = null;
  let stopping: Promise<void> | null = null;
  const cleanup = () => (stopping ??= pg.stop());
  // The test runner gets the signal too and winds down; the cluster goes once it has exited, or
  // after a grace period if it does not.
  const onSignal = (sig: NodeJS.Signals) => {
    signalled = sig;
    child?.kill(sig);
    setTimeout(() => void cleanup().finally(() => process.exit(128 + os.constants.signals[sig])), 10_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    console.log(`kumo tests: PostgreSQL on 127.0.0.1:${pg.port}, ${files.length} test files`);
    const c = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=900000', ...files], {
      cwd: root, stdio: 'inherit', env: { ...process.env, KUMO_TEST_PG: pg.url },
    });
    child = c;
    const code = await new Promise<number>((res) => c.on('exit', (code, signal) => res(code ?? (signal ? 1 : 0))));
    const sig: NodeJS.Signals | null = signalled;
    return sig ? 128 + os.constants.signals[sig] : code;
  } finally {
    await cleanup();
  }
}

main().then((code) => process.exit(code), (e) => {
  console.error(`test runner: ${(e as Error).message}`);
  process.exit(1);
});
