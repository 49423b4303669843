import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { isSqlite } from '../../db/connect.js';
import { failedEventsBetween } from '../../db/stores/alerts.js';
import { openDestinations, saveDestination } from '../../db/stores/destinations.js';
import { writeIntakeBatch } from '../../db/stores/intake.js';
import { claimJobs } from '../../db/stores/jobs.js';
import { intakeRow, seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/** The indexes that hold no row the intake writes (migration 0020), and what keeps them. */
const PARTIAL = {
  jobs_waiting_for: /waiting_for\W+is not null/i,
  events_portal_processed: /processed_at\W+is not null/i,
  jobs_type_due: /type\W*(::text)?\s*=\s*'alert'/i,
} as const;

async function indexDefinition(db: Knex, name: string): Promise<string> {
  if (isSqlite(db)) {
    const row = (await db('sqlite_master').where({ type: 'index', name }).first('sql')) as
      { sql: string } | undefined;
    return row?.sql ?? '';
  }
  const res = (await db.raw('select indexdef from pg_indexes where indexname = ?', [name])) as {
    rows: Array<{ indexdef: string }>;
  };
  return res.rows[0]?.indexdef ?? '';
}

/**
 * Every delivery's commit writes an event, its job and an entry in each of their indexes;
 * an index whose queries never look at new rows should not be paid for by each of them.
 */
describe('indexes the intake does not write', () => {
  let t: TestDeps;
  let portal: TestPortal;

  beforeEach(async () => {
    t = await createTestDeps();
    portal = await seedPortal(t.deps);
  });
  afterEach(async () => {
    await t.close();
  });

  it('are partial, with a condition no new event or job meets', async () => {
    for (const [name, condition] of Object.entries(PARTIAL)) {
      const definition = await indexDefinition(t.deps.db, name);
      // Control: the index exists under that name.
      expect(definition).toContain(name);
      expect(definition).toMatch(condition);
    }
    // What the intake writes is outside each condition.
    const now = Date.now();
    await writeIntakeBatch(t.deps.db, [intakeRow(portal, 1, { receivedAt: now })], now);
    const job = (await t.deps.db('jobs').first()) as Record<string, unknown>;
    const event = (await t.deps.db('events').first()) as Record<string, unknown>;
    expect(job.waiting_for).toBeNull();
    expect(job.type).not.toBe('alert');
    expect(event.processed_at).toBeNull();
  });

  it('are still what their queries use (SQLite query plan)', async () => {
    if (!isSqlite(t.deps.db)) return;
    const db = t.deps.db;
    const now = Date.now();
    await writeIntakeBatch(db, [intakeRow(portal, 1, { receivedAt: now })], now);
    await saveDestination(db, {
      key: 'http:example.com',
      state: 'open',
      failures: 3,
      cooldown_ms: 30_000,
      opened_at: now,
      retry_at: now + 30_000,
      last_error: 'timeout',
      updated_at: now,
    });
    // As they run: with their values bound, not written into the text.
    const queries: Array<{ sql: string; bindings: readonly Knex.Value[] }> = [];
    const onQuery = (q: { sql: string; bindings: readonly Knex.Value[] }) => {
      if (/^select/i.test(q.sql) && /from `(jobs|events)`/.test(q.sql)) queries.push(q);
    };
    db.on('query', onQuery);
    try {
      await openDestinations(db);
      await failedEventsBetween(db, portal.row.id, now - 60_000, now);
      await claimJobs(db, { workerId: 'w', now, limit: 5, lane: 'alert' });
    } finally {
      db.off('query', onQuery);
    }
    const plans = await Promise.all(
      queries.map(async (q) =>
        ((await db.raw(`explain query plan ${q.sql}`, q.bindings)) as Array<{ detail: string }>)
          .map((p) => p.detail)
          .join('\n'),
      ),
    );
    const all = plans.join('\n');
    for (const name of Object.keys(PARTIAL)) expect(all).toMatch(new RegExp(`INDEX ${name}\\b`));
  });
});
