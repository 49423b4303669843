import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { openDb, type DbTarget } from '../../db/connect.js';
import { migrateToLatest } from '../../db/migrate.js';
import { upsertPortal } from '../../db/stores/portals.js';
import { recordStepTest } from '../../db/stores/step-tests.js';
import type { Knex } from 'knex';
import { createSecretBox } from '../../server/lib/crypto.js';
import { createTestDatabase, onPg } from './pg.js';

/**
 * Prepares a DATA_DIR for a spawned server: secrets in env form and one installed portal,
 * written through the real migrations and stores. The database is the SQLite file in
 * `dataDir`, or with B24H_TEST_DB=pg (or `opts.pg`) a fresh PostgreSQL database, named in
 * `env.DATABASE_URL`; `drop()` removes it (a no-op on SQLite, whose file goes with the dir).
 */
export async function seedDataDir(dataDir: string, opts: { pg?: boolean } = {}) {
  const key = randomBytes(32).toString('hex');
  const pgDb = (opts.pg ?? onPg()) ? await createTestDatabase() : undefined;
  const target: DbTarget = pgDb
    ? { client: 'pg', connectionString: pgDb.url }
    : { client: 'sqlite', filename: path.join(dataDir, 'b24hooks.sqlite') };
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    TOKEN_ENCRYPTION_KEY: key,
    SESSION_SECRET: randomBytes(24).toString('hex'),
    ...(pgDb ? { DATABASE_URL: pgDb.url } : {}),
  };
  const db = openDb(target);
  await migrateToLatest(db);
  const box = createSecretBox(Buffer.from(key, 'hex'));
  const memberId = randomBytes(16).toString('hex');
  const applicationToken = randomBytes(16).toString('hex');
  const domain = 'crash.bitrix24.com';
  await upsertPortal(db, {
    member_id: memberId,
    domain,
    status: 'installed',
    application_token_digest: box.digest(applicationToken),
    updated_at: Date.now(),
  });
  await db.destroy();
  return {
    env,
    target,
    portal: { memberId, domain, applicationToken },
    drop: async () => pgDb?.drop(),
  };
}

/** A step an admin sent once from the rule builder (a `step_tests` row of the portal). */
export async function seedStepTest(db: Knex, portalId: number, at: number): Promise<void> {
  await recordStepTest(db, {
    portal_id: portalId,
    rule_name: 'r',
    step_index: 0,
    step_name: null,
    action_type: 'http',
    user_id: 1,
    status: 'succeeded',
    request_summary: null,
    response_summary: null,
    error: null,
    created_at: at,
  });
}
