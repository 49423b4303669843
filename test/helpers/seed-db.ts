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
    // The loads these data folders take (benchmarks, crash and shutdown runs) are one
    // portal's thousands of deliveries a second, past what a portal may store in an hour
    // (server/intake/byte-budget.ts): the budget is counted all the same, never reached.
    PORTAL_INTAKE_MB_PER_HOUR: '1000000',
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

/**
 * A deal event of `memberId`'s portal with its `process_event` job, written directly: for
 * pages that show an event in a state the emulator does not easily reach (a job waiting for
 * its retry, an error of any shape). Returns the event's id.
 */
export async function seedDealEvent(
  db: Knex,
  memberId: string,
  opts: {
    dealId: string;
    status: string;
    lastError: string;
    job: { status: string; lastError: string; runAt: number };
    at: number;
  },
): Promise<number> {
  const portal = (await db('portals').where({ member_id: memberId }).first('id')) as { id: number };
  const { dealId, at } = opts;
  const finished = !['received', 'processing'].includes(opts.status);
  const [row] = await db('events')
    .insert({
      portal_id: portal.id,
      member_id: memberId,
      event: 'ONCRMDEALUPDATE',
      entity_type: 'deal',
      entity_id: dealId,
      body: `{"event":"ONCRMDEALUPDATE","data":{"FIELDS":{"ID":"${dealId}"}}}`,
      status: opts.status,
      attempts: 1,
      last_error: opts.lastError,
      received_at: at,
      ...(finished ? { processed_at: at } : {}),
    })
    .returning('id');
  const eventId = Number(typeof row === 'object' ? (row as { id: number }).id : row);
  await db('jobs').insert({
    type: 'process_event',
    event_id: eventId,
    portal_id: portal.id,
    status: opts.job.status,
    attempts: 1,
    max_attempts: 10,
    last_error: opts.job.lastError,
    run_at: opts.job.runAt,
    created_at: at,
    updated_at: at,
  });
  return eventId;
}
