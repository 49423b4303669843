import { afterAll, describe, expect, it } from '@jest/globals';
import { openDb, type Db } from '../../db/connect.js';
import { migrateToLatest } from '../../db/migrate.js';
import { migrations } from '../../db/migrations/index.js';
import { createTestDatabase, onPg, type TestDatabase } from '../helpers/pg.js';

/**
 * Several instances on one PostgreSQL database (issue 9), in-process: each "instance" is a
 * knex pool of its own, as a separate process would have. Runs in the PostgreSQL pass only
 * (`npm run test:pg`); the SQLite pass lists it as skipped.
 */
(onPg() ? describe : describe.skip)('several instances on PostgreSQL', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function freshDatabase(): Promise<TestDatabase> {
    const d = await createTestDatabase({ template: null });
    cleanups.push(() => d.drop());
    return d;
  }
  function pool(url: string): Db {
    const db = openDb({ client: 'pg', connectionString: url });
    cleanups.push(() => db.destroy());
    return db;
  }

  it('migrates once when four instances start at the same moment; the others wait', async () => {
    const d = await freshDatabase();
    const results = await Promise.all([1, 2, 3, 4].map(() => migrateToLatest(pool(d.url))));
    const applied = results.filter((r) => r.length > 0);
    expect(applied).toHaveLength(1);
    expect(applied[0]).toEqual(migrations.map((m) => m.name));
    expect(results.filter((r) => r.length === 0)).toHaveLength(3);
  });
});
