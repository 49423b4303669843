import type { Knex } from 'knex';
import { migrations } from './migrations/index.js';

/** A static migration source: no directory globbing, so it works from dist/ and from ts-jest. */
const source: Knex.MigrationSource<{ name: string; module: Knex.Migration }> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m.module,
};

/** Applies every pending migration (each in a transaction); returns the names applied. */
export async function migrateToLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({
    migrationSource: source,
    tableName: 'knex_migrations',
  })) as [number, string[]];
  return applied;
}
