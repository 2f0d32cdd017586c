import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase } from '../helpers/postgres.js';

/** An empty store to migrate: a SQLite file in a temp dir, or a fresh PostgreSQL database. */
export async function scratchStore(dialect: 'sqlite' | 'postgres'): Promise<{ url: string; cleanup: () => Promise<void> }> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'kumo-migrate-'));
    return { url: join(dir, 'kumo.db'), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const d = await createDatabase(process.env.KUMO_TEST_PG!);
  return { url: d.url, cleanup: d.drop };
}
