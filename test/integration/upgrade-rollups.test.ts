import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { openDb, type DbTarget } from '../../db/connect.js';
import { migrateToLatest } from '../../db/migrate.js';
import { migrations } from '../../db/migrations/index.js';
import { backlogCounts, countsByStatus } from '../../db/stores/rollups.js';
import { createTestDatabase, onPg } from '../helpers/pg.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Applies the migrations before `name` only (all of them for a name not listed). */
async function migrateBefore(db: Knex, name: string): Promise<void> {
  const end = migrations.findIndex((m) => m.name === name);
  const older = end < 0 ? [...migrations] : migrations.slice(0, end);
  await db.migrate.latest({
    migrationSource: <Knex.MigrationSource<(typeof migrations)[number]>>{
      getMigrations: async () => older,
      getMigrationName: (m) => m.name,
      getMigration: async (m) => m.module,
    },
    tableName: 'knex_migrations',
  });
}

/** A database of a version before 0016 holding four events (one pending); its portal's id. */
async function seedOldDatabase(db: Knex): Promise<number> {
  await migrateBefore(db, '0016-rollups');
  const now = Date.now();
  const [p] = await db('portals')
    .insert({
      member_id: 'old-member',
      domain: 'old.bitrix24.com',
      status: 'installed',
      updated_at: now,
    })
    .returning('id');
  const portalId = typeof p === 'object' ? (p as { id: number }).id : (p as number);
  const ev = (i: number, status: string) => ({
    portal_id: portalId,
    member_id: 'old-member',
    event: 'ONCRMDEALUPDATE',
    entity_type: 'deal',
    entity_id: String(i),
    status,
    attempts: 1,
    received_at: now - 3600_000 + i * 1000,
    processed_at: status === 'processed' ? now - 3600_000 + i * 1000 + 200 : null,
  });
  await db('events').insert([
    ev(1, 'processed'),
    ev(2, 'processed'),
    ev(3, 'skipped'),
    ev(4, 'received'),
  ]);
  return portalId;
}

/** Runs `body` on a fresh database (SQLite file, or PostgreSQL in the second pass). */
async function withDb(body: (db: Knex) => Promise<void>): Promise<void> {
  const tmp = tempDir();
  const pgDb = onPg() ? await createTestDatabase({ template: null }) : undefined;
  const target: DbTarget = pgDb
    ? { client: 'pg', connectionString: pgDb.url }
    : { client: 'sqlite', filename: path.join(tmp.dir, 'b24hooks.sqlite') };
  const db = openDb(target);
  try {
    await body(db);
  } finally {
    await db.destroy();
    await pgDb?.drop();
    tmp.cleanup();
  }
}

describe('upgrading a database from before the rollups (0016)', () => {
  it('counts the events it already holds in status, backlog and the figures', async () => {
    await withDb(async (db) => {
      const portalId = await seedOldDatabase(db);

      await migrateToLatest(db);

      // Before: every figure was 0 until someone ran `npx b24hooks rollups rebuild`.
      const counts = await countsByStatus(db);
      expect(counts.get('processed')).toBe(2);
      expect(counts.get('skipped')).toBe(1);
      expect(counts.get('received')).toBe(1);
      expect((await backlogCounts(db)).get(portalId)).toBe(1);
    });
  });

  it('counts them at the next start when the start that applied 0016 stopped before the count', async () => {
    await withDb(async (db) => {
      const portalId = await seedOldDatabase(db);
      // The start that upgraded committed the migrations and was then killed (or its count
      // failed) on a large log: 0016 is applied, the rollups are empty.
      await migrateBefore(db, 'after every migration');
      expect(await db('rollups').first('kind')).toBeUndefined();

      await migrateToLatest(db);

      const counts = await countsByStatus(db);
      expect(counts.get('processed')).toBe(2);
      expect(counts.get('received')).toBe(1);
      expect((await backlogCounts(db)).get(portalId)).toBe(1);
    });
  });
});
