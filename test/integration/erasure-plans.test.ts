import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  ERASED_BY_NAME,
  eraseEvents,
  erasePortalInstallation,
  erasePortalRecords,
  tableColumns,
} from '../../db/stores/erasure.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { onPg } from '../helpers/pg.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * A CLEAN uninstall's last transaction holds the write lock while every portal waits, on the
 * main thread: each of its statements must find the portal's rows by index. Its sweep of
 * "any table with portal_id or member_id" deleted `where portal_id = ? or member_id = ?`,
 * which read the whole events table (and rollups, whose key does not start with portal_id):
 * 193 ms at 200,000 events in another portal, over a second at a million (data-lifecycle
 * review).
 */
describe('a CLEAN uninstall’s statements', () => {
  let t: TestDeps;
  let gone: TestPortal;
  let other: TestPortal;
  beforeAll(async () => {
    t = await createTestDeps();
    gone = await seedPortal(t.deps, { memberId: 'acme_1' });
    other = await seedPortal(t.deps, { memberId: 'acmeX1' });
  });
  afterAll(async () => {
    await t.close();
  });

  it('every table holding a portal’s rows is erased by name, not by the catch-all sweep', async () => {
    const unnamed = [...(await tableColumns(t.deps.db))]
      .filter(([table, cols]) => table !== 'portals' && !ERASED_BY_NAME.has(table))
      .filter(([, cols]) => cols.includes('portal_id') || cols.includes('member_id'))
      .map(([table]) => table);
    expect(unnamed).toEqual([]);
    // Control: the tables the sweep used to read whole are among those named.
    expect(['events', 'rollups', 'sla_breaches'].every((x) => ERASED_BY_NAME.has(x))).toBe(true);
  });

  (onPg() ? it.skip : it)(
    'find the portal’s rows by index: no statement reads a whole table that grows',
    async () => {
      const { db } = t.deps;
      const statements: Array<{ sql: string; bindings: readonly unknown[] }> = [];
      const listen = (q: { sql: string; bindings?: readonly unknown[] }) => {
        if (/^\s*(delete|select|update)/i.test(q.sql) && !/sqlite_master|pragma/i.test(q.sql)) {
          statements.push({ sql: q.sql, bindings: q.bindings ?? [] });
        }
      };
      db.on('query', listen);
      try {
        // The whole CLEAN path: the batches before the last transaction run on this thread too.
        await eraseEvents(db, gone.row, undefined, 500);
        await erasePortalRecords(db, gone.row, 500);
        await erasePortalInstallation(db, gone.row);
      } finally {
        db.off('query', listen);
      }
      expect(statements.length).toBeGreaterThan(10);
      const scans: string[] = [];
      for (const s of statements) {
        const plan = (await db.raw(`explain query plan ${s.sql}`, s.bindings as never)) as Array<{
          detail: string;
        }>;
        for (const p of plan) {
          const table = /^SCAN (\w+)/.exec(p.detail)?.[1];
          // Bounded small tables: sessions (a few per user, expiring; the JSON names the
          // portal), user_token_renewals (kept while a session holding the pair lives),
          // destinations (one per host a step names) and recovery_gaps (a row per sweep),
          // the last two pruned with retention.
          const small = ['sessions', 'user_token_renewals', 'destinations', 'recovery_gaps'];
          if (table && !small.includes(table)) scans.push(`${p.detail}: ${s.sql}`);
        }
      }
      expect(scans).toEqual([]);
    },
  );

  it('takes the portal’s alert states by their exact keys, not another portal’s or the total', async () => {
    const { db } = t.deps;
    await seedPortal(t.deps, { memberId: 'acme_1' });
    const at = t.deps.clock.now().getTime();
    const row = (key: string, member: string | null) => ({
      key,
      kind: key.split(':')[0],
      member_id: member,
      state: 'firing',
      updated_at: at,
    });
    await db('alert_state').insert([
      row('backlog:acme_1', 'acme_1'),
      row('sla-late:acme_1', null),
      row('backlog:acmeX1', other.memberId),
      row('sla-late:acmeX1', null),
      row('backlog:ACME_1', null),
      row('backlog:total', null),
    ]);
    await erasePortalInstallation(db, gone.row);
    expect(((await db('alert_state').orderBy('key').pluck('key')) as string[]).sort()).toEqual(
      ['backlog:ACME_1', 'backlog:acmeX1', 'backlog:total', 'sla-late:acmeX1'].sort(),
    );
  });
});
