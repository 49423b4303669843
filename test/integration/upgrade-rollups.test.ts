import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { openDb, type DbTarget } from '../../db/connect.js';
import { migrateToLatest } from '../../db/migrate.js';
import { migrations } from '../../db/migrations/index.js';
import {
  backlogCounts,
  changeEvents,
  countNewEvents,
  countsByStatus,
  listRollups,
  oldestPendingAt,
} from '../../db/stores/rollups.js';
import { backfillMatchSla } from '../../server/rules/sla-rules.js';
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

  it("counts the rules' SLA of the rule matches it holds, as the server migrates it", async () => {
    await withDb(async (db) => {
      const portalId = await seedOldDatabase(db);
      // Before 0016 a rule match kept no SLA: the count skipped every one of them, and the
      // SLA figures read 0 until `rollups rebuild`, the only place that filled them in.
      const events = (await db('events')
        .where('status', 'processed')
        .orderBy('id')
        .select('id')) as Array<{ id: number }>;
      await db('rule_matches').insert(
        events.map((e) => ({
          event_id: e.id,
          rule_name: 'Paid deal',
          rule_index: 0,
          status: 'done',
          created_at: Date.now(),
        })),
      );
      await db('settings').insert({
        scope: 'old-member',
        key: 'rules',
        value: JSON.stringify({
          rules: [{ name: 'Paid deal', on: ['ONCRMDEALUPDATE'], slaSeconds: 60, actions: [] }],
        }),
        updated_at: Date.now(),
      });

      // As the server and the CLI migrate it (server/main.ts, server/cli/run.ts).
      await migrateToLatest(db, { beforeRecount: backfillMatchSla });

      const sla = (await listRollups(db)).filter(
        (r) => r.kind === 'sla' && r.grain === 'h' && r.portal_id === portalId,
      );
      expect(sla.map((r) => [r.k1, r.n])).toEqual([['Paid deal', 2]]);
      // Both were done within the 60 s (200 ms after receipt).
      expect(sla[0]!.s).toBe(2);
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

/**
 * Several instances upgrading one PostgreSQL database with a large log: the count of the
 * stored events must not hold the migration lock the others wait on, and must come out right
 * although another instance serves (stores and processes events) while it reads.
 */
(onPg() ? describe : describe.skip)(
  'two instances upgrading a large log at once (PostgreSQL)',
  () => {
    it('both start without waiting for the count, and the figures come out exact', async () => {
      await withDb(async (db) => {
        const portalId = await seedOldDatabase(db);
        // A realistically large log: 300,000 more events, 1 in 20 still pending.
        const now = Date.now();
        await db.raw(
          `insert into events (portal_id, member_id, event, entity_type, entity_id, status,
                             attempts, received_at, processed_at)
         select ?, 'old-member', 'ONCRMDEALUPDATE', 'deal', i::text,
                case when i % 20 = 0 then 'received' else 'processed' end, 1,
                ?::bigint - i * 1000,
                case when i % 20 = 0 then null else ?::bigint - i * 1000 + 300 end
           from generate_series(1, 300000) i`,
          [portalId, now, now],
        );
        const url = (db.client.config as { connection: { connectionString: string } }).connection
          .connectionString;
        const [a, b] = [0, 1].map(() => openDb({ client: 'pg', connectionString: url }));
        try {
          const started = [a!, b!].map((d) => migrateToLatest(d).then(() => d));
          // The instance that does not count is up first, while the count still runs…
          const first = await Promise.race(started);
          expect((await countsByStatus(db)).get('processed') ?? 0).toBe(0);
          // …and serves meanwhile: it processes old pending events and stores new ones.
          const pending = (await first('events')
            .where({ status: 'received' })
            .orderBy('id')
            .limit(50)
            .pluck('id')) as number[];
          await changeEvents(first, pending, (trx) =>
            trx('events').whereIn('id', pending).update({ status: 'processed', processed_at: now }),
          );
          const fresh = (await first('events')
            .insert(
              Array.from({ length: 30 }, (_, i) => ({
                portal_id: portalId,
                member_id: 'old-member',
                event: 'ONCRMDEALADD',
                entity_type: 'deal',
                entity_id: `new-${i}`,
                status: 'received',
                attempts: 0,
                received_at: now,
              })),
            )
            .returning('id')) as Array<{ id: number }>;
          await first.transaction((trx) =>
            countNewEvents(
              trx,
              fresh.map((r) => r.id),
            ),
          );
          await Promise.all(started);
        } finally {
          await a!.destroy();
          await b!.destroy();
        }

        expect(await db('rollup_recounts').first('id')).toBeUndefined();
        const truth = new Map(
          (
            (await db('events').groupBy('status').select('status').count({ n: '*' })) as Array<{
              status: string;
              n: number | string;
            }>
          ).map((r) => [r.status, Number(r.n)]),
        );
        const counts = await countsByStatus(db);
        expect(counts.get('processed')).toBe(truth.get('processed'));
        expect(counts.get('received')).toBe(truth.get('received'));
        expect(counts.get('skipped')).toBe(1);
        expect((await backlogCounts(db)).get(portalId)).toBe(truth.get('received'));
        // 30,000 pending old events, 50 of them processed since, 30 new ones.
        expect(truth.get('received')).toBe(15_000 + 1 - 50 + 30);
        // A later start counts nothing again.
        const c = openDb({ client: 'pg', connectionString: url });
        await migrateToLatest(c).finally(() => c.destroy());
        expect((await countsByStatus(db)).get('processed')).toBe(truth.get('processed'));
      });
    }, 120_000);
  },
);

describe('upgrading a database across 0033 (a replayed event waits from its replay)', () => {
  it("moves the backlog count of a replayed event still waiting to its replay's hour", async () => {
    await withDb(async (db) => {
      await migrateBefore(db, '0033-backlog-waits-from-replay');
      const [p] = await db('portals')
        .insert({
          member_id: 'm33',
          domain: 'm33.bitrix24.com',
          status: 'installed',
          updated_at: 1,
        })
        .returning('id');
      const portalId = typeof p === 'object' ? (p as { id: number }).id : (p as number);
      const H = 3_600_000;
      const ev = (i: number, status: string, queuedAt: number | null) => ({
        portal_id: portalId,
        member_id: 'm33',
        event: 'ONCRMDEALUPDATE',
        entity_type: 'deal',
        entity_id: String(i),
        status,
        attempts: 0,
        received_at: 100 * H + i,
        queued_at: queuedAt,
      });
      // Waiting: one never replayed, two replayed at 103 h; one replayed and done since.
      const ids = (
        await db('events')
          .insert([
            ev(1, 'received', null),
            ev(2, 'received', 103 * H + 5),
            ev(3, 'processing', 103 * H + 9),
            ev(4, 'processed', 103 * H + 9),
          ])
          .returning('id')
      ).map((r) => (typeof r === 'object' ? (r as { id: number }).id : (r as number)));
      // The backlog row as 0032's code kept it: by receipt hour.
      expect(ids).toHaveLength(4);
      await db('rollups').insert({
        ...{ kind: 'pend', grain: 'h', portal_id: portalId, bucket: 100 * H },
        ...{ k1: '', k2: '', n: 3, s: 0, mx: 0 },
      });

      await migrateToLatest(db);

      const pendRows = async () =>
        (await listRollups(db))
          .filter((r) => r.kind === 'pend' && r.n !== 0)
          .map((r) => [r.bucket, r.k1, r.k2, r.n])
          .sort((x, y) => String(x).localeCompare(String(y)));
      expect(await pendRows()).toEqual([
        [100 * H, '', 'received', 1],
        [103 * H, 'r', 'processing', 1],
        [103 * H, 'r', 'received', 1],
      ]);
      expect(await oldestPendingAt(db, portalId)).toBe(100 * H + 1);
      // Rolled back (a failed release), the rows are keyed as 0032's code keeps them, on
      // both databases (PostgreSQL refused its GROUP BY), and forward again.
      const m0033 = migrations.find((m) => m.name === '0033-backlog-waits-from-replay')!.module;
      await db.transaction(async (trx) => {
        await m0033.down!(trx);
      });
      expect(await pendRows()).toEqual([[100 * H, '', '', 3]]);
      await db.transaction(async (trx) => {
        await m0033.up(trx);
      });
      expect(await pendRows()).toHaveLength(3);
    });
  });
});
