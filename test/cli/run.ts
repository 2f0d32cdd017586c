import { spawn } from 'node:child_process';
import { KUMO } from '../helpers/cloud.js';

export interface Run { code: number; stdout: string; stderr: string }

/** The CLI as a user runs it: a process, its exit code and both streams. KUMO_* of the test
 * runner's own environment are dropped so only what a test passes counts. */
export function kumo(args: string[], o: { env?: Record<string, string>; cwd?: string } = {}): Promise<Run> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KUMO_'))) as Record<string, string>;
  const p = spawn(process.execPath, [KUMO, ...args], { env: { ...env, ...o.env }, cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => { stdout += d; });
  p.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
