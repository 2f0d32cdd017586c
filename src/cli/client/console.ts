import WebSocket from 'ws';
import { ApiError, CliError, type Connection } from './connection.js';

const DETACH = 0x1d; // Ctrl-]
/** Piped input has ended: keep showing output until the console has been quiet this long. */
const QUIET_MS = 1000;
const LINGER_MAX_MS = 10_000;

const authorization = (c: Connection) => (c.user === undefined
  ? `Bearer ${c.key}` : `Basic ${Buffer.from(`${c.user}:${c.key}`).toString('base64')}`);

/** `kumo vm console VM --tail`: the exact bytes, so colours and line endings reach the terminal as the guest wrote them. */
export async function printTail(conn: Connection, vmId: string): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${conn.url}/v1/vms/${encodeURIComponent(vmId)}/console/raw`, { headers: { authorization: authorization(conn) }, signal: AbortSignal.timeout(60_000) });
  } catch (e) {
    const err = e as Error & { cause?: Error };
    throw new CliError(`cannot reach the controller at ${conn.url}: ${err.cause?.message ?? err.message}`);
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (res.ok) { process.stdout.write(body); return; }
  let p: { title?: string; code?: number; detail?: string } = {};
  try { p = JSON.parse(body.toString()); } catch { /* not problem+json */ }
  const hint = res.status === 401 ? ` (credentials from ${conn.source})` : '';
  throw new ApiError(res.status, p.title ?? `HTTP ${res.status}`, p.code, (p.detail ?? body.toString().slice(0, 200)) + hint);
}

/**
 * `kumo vm console VM`: a terminal in raw mode wired to the VM's serial console until Ctrl-]; with
 * piped input (not a terminal), sends it all and leaves once the output has settled.
 */
export function attach(conn: Connection, vmId: string): Promise<void> {
  const url = new URL(`${conn.url}/v1/vms/${encodeURIComponent(vmId)}/console/ws`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(url, { headers: { authorization: authorization(conn) } });
  const stdin = process.stdin;
  const tty = stdin.isTTY === true;
  let detached = false;
  let quiet: NodeJS.Timeout | undefined;
  let linger: NodeJS.Timeout | undefined;

  const detach = () => { detached = true; ws.close(1000); };
  const onInput = (chunk: Buffer) => {
    const at = tty ? chunk.indexOf(DETACH) : -1;
    const data = at < 0 ? chunk : chunk.subarray(0, at);
    if (data.length && ws.readyState === ws.OPEN) ws.send(data, { binary: true });
    if (at >= 0) detach();
  };
  const settle = () => { clearTimeout(quiet); quiet = setTimeout(detach, QUIET_MS); };
  const onEnd = () => { settle(); linger = setTimeout(detach, LINGER_MAX_MS); };
  const cleanup = () => {
    clearTimeout(quiet); clearTimeout(linger);
    stdin.off('data', onInput).off('end', onEnd);
    if (tty) stdin.setRawMode(false);
    stdin.pause();
    process.off('SIGTERM', detach).off('SIGHUP', detach);
  };

  // Node's raw mode keeps the terminal's newline translation, so plain "\n" is right in both modes.
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      process.stderr.write(`Connected to ${vmId} console; Ctrl-] detaches\n`);
      if (tty) stdin.setRawMode(true);
      stdin.on('data', onInput).on('end', onEnd).resume();
      // In raw mode Ctrl-C goes to the guest; these still end the session with the terminal restored.
      process.on('SIGTERM', detach).on('SIGHUP', detach);
    });
    ws.on('message', (d: Buffer) => { process.stdout.write(d); if (linger) settle(); });
    ws.on('error', () => { /* 'close' follows and says what happened */ });
    ws.on('unexpected-response', (_req, res) => {
      cleanup();
      reject(new CliError(`the controller at ${conn.url} refused the console websocket: HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.on('close', (code, reason) => {
      cleanup();
      const why = reason.toString();
      if (detached) { if (tty) process.stderr.write(`\nDetached from ${vmId} console\n`); return resolve(); }
      if (code >= 4000) return reject(new CliError(why || `console closed (${code})`));
      if (code === 1006) return reject(new CliError(`cannot reach the console at ${conn.url}`));
      process.stderr.write(`${tty ? '\n' : ''}Console of ${vmId} closed${why ? `: ${why}` : ''}\n`);
      resolve();
    });
  });
}
