import fs from 'node:fs';
import { isPg } from '../../db/connect.js';
import type { TestDeps } from './test-deps.js';

/**
 * Everything the test's database holds, as text, to show that no secret is stored in clear:
 * on SQLite the bytes of the file and its WAL (after a checkpoint), on PostgreSQL every row of
 * every table of the test database.
 */
export async function storedText(t: Pick<TestDeps, 'deps' | 'dbFile'>): Promise<string> {
  const db = t.deps.db;
  if (isPg(db)) {
    const tables = (
      (await db.raw(
        'select tablename from pg_tables where schemaname = current_schema() order by tablename',
      )) as { rows: { tablename: string }[] }
    ).rows.map((r) => r.tablename);
    const parts: string[] = [];
    for (const table of tables) {
      const { rows } = (await db.raw('select t::text as row from ?? t', [table])) as {
        rows: { row: string }[];
      };
      parts.push(...rows.map((r) => r.row));
    }
    if (parts.length === 0) throw new Error('the test database holds no rows at all');
    return parts.join('\n');
  }
  await db.raw('pragma wal_checkpoint(FULL)');
  const files = [t.dbFile, `${t.dbFile}-wal`].filter((f) => fs.existsSync(f));
  if (files.length === 0) throw new Error(`no database file at ${t.dbFile}`);
  return Buffer.concat(files.map((f) => fs.readFileSync(f))).toString('latin1');
}
