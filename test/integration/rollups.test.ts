import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { createWorker } from '../../server/queue/worker.js';
import { PermanentError, RetryableError } from '../../server/lib/retry-errors.js';
import type { JobHandler } from '../../server/queue/types.js';
import { replayEvents } from '../../server/processing/replay.js';
import { runCliIn } from '../helpers/cli.js';
import { openSqliteConnection } from '../../db/connect.js';
import { sqliteIntakeWriter, writeIntakeBatch, type IntakeRow } from '../../db/stores/intake.js';
import {
  insertRuleMatches,
  listRuleMatches,
  markEvaluated,
  recordActionRun,
  setRuleMatchStatus,
} from '../../db/stores/processing.js';
import { statusFigures, updateEvent } from '../../db/stores/events.js';
import { logPage, TEXT_SCAN_ROWS } from '../../db/stores/event-log.js';
import { findLateSlaBreachesStep, slaCounts } from '../../db/stores/sla.js';
import { expireUnverified } from '../../db/stores/unverified.js';
import {
  listRollups,
  pruneRollups,
  rebuildRollups,
  recountRollups,
  ROLLUP_HORIZON_MS,
  type RollupRow,
} from '../../db/stores/rollups.js';
import { prng } from '../helpers/hostile-input.js';
import { onPg } from '../helpers/pg.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { intakeRow, seedPortal, type TestPortal } from '../helpers/event-builder.js';

const keyOf = (r: RollupRow) => [r.kind, r.grain, r.portal_id, r.bucket, r.k1, r.k2].join('|');

/** Adds `b` into `a` (rows of the same key summed). */
function addRows(a: Map<string, RollupRow>, b: readonly RollupRow[]) {
  for (const r of b) {
    const x = a.get(keyOf(r));
    if (x) {
      x.n += r.n;
      x.s += r.s;
      x.mx = Math.max(x.mx, r.mx);
    } else a.set(keyOf(r), { ...r });
  }
}

/** Compares stored rollups with the expected ones: counts and sums exactly, maxima as bounds. */
function expectSame(actual: readonly RollupRow[], expected: Map<string, RollupRow>) {
  const got = new Map<string, RollupRow>();
  for (const r of actual) if (r.n !== 0 || r.s !== 0) got.set(keyOf(r), r);
  const want = [...expected.values()].filter((r) => r.n !== 0 || r.s !== 0);
  const strip = (r: RollupRow) => `${keyOf(r)} n=${r.n} s=${r.s}`;
  expect([...got.values()].map(strip).sort()).toEqual(want.map(strip).sort());
  // A maximum may stay above what is left (an event replayed away), never below.
  for (const w of want) expect(got.get(keyOf(w))!.mx).toBeGreaterThanOrEqual(w.mx);
}

const RULES = ['Invoice', 'Shipment', 'No SLA'];
const SLA_MS: Record<string, number | null> = {
  Invoice: 30_000,
  Shipment: 120_000,
  'No SLA': null,
};

describe('rollups', () => {
  let t: TestDeps;
  let portals: TestPortal[];

  beforeEach(async () => {
    t = await createTestDeps({ MAX_ATTEMPTS: '3', RETRY_BASE_SECONDS: '5', LOG_LEVEL: 'silent' });
    t.clock.set(Date.UTC(2026, 10, 27, 8, 55, 0));
    portals = [await seedPortal(t.deps), await seedPortal(t.deps)];
  });
  afterEach(async () => {
    await t.close();
  });

  it('equal a full recount after random deliveries, retries, replays, failures and prunes', async () => {
    const rand = prng(0x23);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
    const db = t.deps.db;
    const now = () => t.clock.now().getTime();

    // Processing as the rule processor records it: rules matched (with their SLA), action
    // steps, rules done or skipped; then success, a retry, a paused or a permanent failure.
    const handler: JobHandler = async ({ event }) => {
      if (!event) return undefined;
      if ((await listRuleMatches(db, event.id)).length === 0 && rand() < 0.8) {
        const rules = RULES.filter(() => rand() < 0.6);
        await insertRuleMatches(
          db,
          rules.map((rule, i) => ({
            event_id: event.id,
            rule_name: rule,
            rule_index: i,
            reason: null,
            previous: null,
            sla_ms: SLA_MS[rule],
          })),
          now(),
        );
        await markEvaluated(db, event.id, now(), 0);
      }
      t.clock.advance(Math.floor(rand() * 60_000));
      for (const m of await listRuleMatches(db, event.id)) {
        if (m.status !== 'matched') continue;
        if (rand() < 0.1) {
          await setRuleMatchStatus(db, event.id, m.rule_name, 'skipped', 'stale trigger');
          continue;
        }
        // Every seventh event's steps fail, others at random (a deterministic share of failures).
        const ok = event.id % 7 !== 0 && rand() < 0.8;
        await recordActionRun(db, {
          event_id: event.id,
          rule_name: m.rule_name,
          step_index: 0,
          step_name: null,
          action_type: 'http',
          idempotency_key: `${event.id}:${m.rule_name}:0`,
          status: ok ? 'succeeded' : 'failed',
          request_summary: null,
          response_summary: null,
          output: null,
          error: ok ? null : 'HTTP 500',
          started_at: now(),
          finished_at: now(),
          generation: 0,
        });
        if (!ok) {
          if (event.id % 2 === 0 || rand() < 0.3) throw new PermanentError('HTTP 422');
          throw new RetryableError('HTTP 500');
        }
        await setRuleMatchStatus(db, event.id, m.rule_name, 'done', null);
      }
      return rand() < 0.1 ? { eventStatus: 'skipped' as const } : undefined;
    };
    const worker = createWorker(t.deps, {
      handlers: { process_event: handler },
      random: () => 0.5,
      concurrency: 1,
    });

    // The SQLite pass also writes half the batches on the intake writer thread's connection.
    const conn = onPg() ? undefined : openSqliteConnection(t.dbFile);
    const bare = conn ? sqliteIntakeWriter(conn) : undefined;
    let deal = 0;
    const pruned = new Map<string, RollupRow>();
    let prunedEvents = 0;
    let replayed = 0;
    let expired = 0;
    let dead = 0;
    try {
      // Every kind of change in each cycle, in a shuffled order with random sizes.
      const cycle = ['deliver', 'deliver', 'deliver', 'work', 'work', 'verify', 'replay', 'prune'];
      const steps = Array.from({ length: 6 }, () => [...cycle].sort(() => rand() - 0.5)).flat();
      for (const step of steps) {
        if (step === 'deliver') {
          // A delivery batch: new events, repeats, rejected and unverified ones.
          const rows: IntakeRow[] = [];
          const size = 1 + Math.floor(rand() * 12);
          for (let i = 0; i < size; i++) {
            const portal = pick(portals);
            const r = rand();
            const id = r < 0.15 && deal > 0 ? 1 + Math.floor(rand() * deal) : ++deal;
            const row = intakeRow(portal, id, {
              key: r > 0.9 ? null : `key-${portal.row.id}-${id}`,
              receivedAt: now(),
            });
            if (r > 0.8 && r <= 0.9) {
              row.event.status = 'unverified';
              row.job = null;
            }
            if (rand() < 0.2) row.event.source = pick(['offline', 'sweep']);
            rows.push(row);
          }
          if (bare && rand() < 0.5) bare(rows, now());
          else await writeIntakeBatch(db, rows, now());
        } else if (step === 'work') {
          t.clock.advance(Math.floor(rand() * 20 * 60_000));
          dead += (await worker.runOnce()).filter((o) => o.outcome === 'dead').length;
        } else if (step === 'verify') {
          // The install race resolved: one portal's unverified events expired (never proven
          // in time), the others' verified or rejected. The portal of the oldest one, so the
          // expiry is tried whatever order the worker took its jobs in.
          const oldest = (await db('events')
            .where({ status: 'unverified' })
            .orderBy('id')
            .first('portal_id')) as { portal_id: number | string } | undefined;
          if (oldest) {
            expired += await expireUnverified(db, Number(oldest.portal_id), now() + 1, now());
          }
          const waiting = (await db('events')
            .where({ status: 'unverified' })
            .pluck('id')) as number[];
          for (const id of waiting) {
            await updateEvent(
              db,
              Number(id),
              rand() < 0.5
                ? { status: 'received', auth_enc: null }
                : { status: 'rejected', reject_reason: 'token_mismatch', processed_at: now() },
            );
          }
        } else if (step === 'replay') {
          const r = await replayEvents(t.deps, {
            filter: { from: now() - 6 * 3600_000, portalId: pick(portals).row.id },
            rerunSucceeded: rand() < 0.5,
          });
          replayed += r.queued;
        } else {
          // A (simulated) retention prune: finished events and all that belongs to them go;
          // their figures must stay in the rollups.
          const ids = (
            (await db('events')
              .whereIn('status', ['processed', 'failed', 'skipped', 'rejected'])
              .pluck('id')) as number[]
          )
            .map(Number)
            .filter(() => rand() < 0.3);
          if (ids.length === 0) continue;
          addRows(pruned, await recountRollups(db, { eventIds: ids }));
          prunedEvents += ids.length;
          await db.transaction(async (trx) => {
            await trx('action_runs').whereIn('event_id', ids).delete();
            await trx('rule_matches').whereIn('event_id', ids).delete();
            await trx('jobs').whereIn('event_id', ids).delete();
            await trx('events').whereIn('id', ids).delete();
          });
        }
      }
      // Let everything due run (retries included), then compare once more.
      for (let i = 0; i < 20; i++) {
        t.clock.advance(30 * 60_000);
        dead += (await worker.runOnce()).filter((o) => o.outcome === 'dead').length;
      }
    } finally {
      conn?.close();
    }

    // Controls: the sequence really did each of the things the rollups must follow.
    const statuses = (await db('events').distinct('status').pluck('status')) as string[];
    expect(statuses).toEqual(expect.arrayContaining(['processed', 'rejected']));
    expect(dead).toBeGreaterThan(0); // events failed for good (some replayed or pruned since)
    expect(prunedEvents).toBeGreaterThan(0);
    expect(replayed).toBeGreaterThan(0);
    expect(expired).toBeGreaterThan(0);
    expect(Number((await db('action_runs').count({ n: '*' }).first())?.n)).toBeGreaterThan(0);

    const expected = new Map<string, RollupRow>();
    addRows(expected, await recountRollups(db));
    addRows(expected, [...pruned.values()]);
    const kinds = new Set([...expected.values()].map((r) => r.kind));
    expect([...kinds].sort()).toEqual(['act', 'dur', 'ev', 'late', 'pend', 'sla', 'src']);
    expectSame(await listRollups(db), expected);

    // The rebuild recounts what is kept: equal to the recount, without the pruned events.
    const before = await statusFigures(db, t.clock.now());
    await rebuildRollups(db);
    const kept = new Map<string, RollupRow>();
    addRows(kept, await recountRollups(db));
    expectSame(await listRollups(db), kept);
    const after = await statusFigures(db, t.clock.now());
    expect(after.backlog).toBe(before.backlog);
    expect(after.oldestPendingSeconds).toBe(before.oldestPendingSeconds);
  });

  it("time a replayed event's processing from its replay, and its SLA by its first completion", async () => {
    const db = t.deps.db;
    const now = () => t.clock.now().getTime();
    // Each run takes 3 s; the rule promises 30 s. Deal 2's first run fails for good (at once).
    let failDeal2 = true;
    let skipDeal1 = false;
    const handler: JobHandler = async ({ event }) => {
      if (!event) return undefined;
      if ((await listRuleMatches(db, event.id)).length === 0) {
        const match = { event_id: event.id, rule_name: 'Invoice', rule_index: 0 };
        await insertRuleMatches(
          db,
          [{ ...match, reason: null, previous: null, sla_ms: 30_000 }],
          now(),
        );
        await markEvaluated(db, event.id, now(), 0);
      }
      if (event.entity_id === '2' && failDeal2) throw new PermanentError('HTTP 422');
      if (event.entity_id === '1' && skipDeal1) return { eventStatus: 'skipped' as const };
      t.clock.advance(3000);
      await setRuleMatchStatus(db, event.id, 'Invoice', 'done', null);
      return undefined;
    };
    const worker = createWorker(t.deps, { handlers: { process_event: handler }, concurrency: 1 });
    const rows0 = [1, 2].map((deal) => intakeRow(portals[0]!, deal, { receivedAt: now() }));
    await writeIntakeBatch(db, rows0, now());
    await worker.runOnce();
    await worker.runOnce();
    const first = await statusFigures(db, t.clock.now());
    expect([first.processed, first.failed, first.avgProcessingMs]).toEqual([1, 1, 3000]);

    // Two hours later (inside the figures' 24 h) an admin replays both: 3 s each, one after
    // the other (deal 2 waits for deal 1: 6 s from the replay).
    t.clock.advance(2 * 3600_000);
    failDeal2 = false;
    const r = await replayEvents(t.deps, { filter: { portalId: portals[0]!.row.id } });
    expect(r.queued).toBe(2); // control: the replay ran
    const waiting = await statusFigures(db, t.clock.now());
    expect([waiting.processed, waiting.backlog, waiting.avgProcessingMs]).toEqual([0, 2, 0]);
    // While they wait, deal 1 is still judged by its first completion: in time.
    const slaRows = async () =>
      (await listRollups(db))
        .filter((x) => x.kind === 'sla' && x.grain === 'h' && x.n > 0)
        .map((x) => [x.n, x.s]);
    expect(await slaRows()).toEqual([[1, 1]]);
    await worker.runOnce();
    await worker.runOnce();
    const after = await statusFigures(db, t.clock.now());
    expect([after.processed, after.avgProcessingMs, after.p95ProcessingMs]).toEqual([
      2, 4500, 6000,
    ]);
    // /metrics' histogram says the same: 3 s (deal 1; deal 2's failure is not a processing
    // time), then 3 + 6 s; none of 2 hours.
    const text = await t.deps.metrics.registry.metrics();
    const sum = /^b24hooks_event_processing_seconds_sum\{[^}]*\} (\S+)$/m.exec(text);
    expect(Number(sum?.[1])).toBe(12);
    // Its page's "Started" is the replay's run, after the replay.
    const ev = await db('events')
      .orderBy('id')
      .first('processing_started_at', 'queued_at', 'received_at');
    expect(Number(ev.processing_started_at)).toBeGreaterThanOrEqual(Number(ev.queued_at));
    expect(Number(ev.queued_at) - Number(ev.received_at)).toBe(2 * 3600_000 + 3000);
    const rows = await listRollups(db);
    const dur = rows.filter((x) => x.kind === 'dur' && x.grain === 'h' && x.n > 0);
    // (One row per histogram bucket: 3 s and 6 s fall in two.)
    expect(dur.map((x) => [x.n, x.s, x.mx]).sort()).toEqual([
      [1, 3000, 3000],
      [1, 6000, 6000],
    ]);
    // The promise was 30 s from the delivery. Deal 1 kept it (3 s) before its replay; deal 2
    // was done only by the replay, 2 h after: late.
    const sla = rows.filter((x) => x.kind === 'sla' && x.grain === 'h' && x.n > 0);
    expect(sla.map((x) => [x.n, x.s])).toEqual([[2, 1]]);
    const late = rows.filter((x) => x.kind === 'late' && x.n > 0);
    expect(late.map((x) => [x.k1, x.n])).toEqual([['Invoice', 1]]);
    // The breach search agrees: deal 2 only.
    const lateSearch = () =>
      findLateSlaBreachesStep(
        db,
        { id: portals[0]!.row.id, memberId: portals[0]!.memberId },
        [{ name: 'Invoice', on: ['ONCRMDEALUPDATE'], slaSeconds: 30 }],
        { after: 0, upTo: now(), lateSince: 0 },
        now(),
      );
    const search = await lateSearch();
    const deal2 = await db('events').where({ entity_id: '2' }).first('id');
    expect(search.rows.map((x) => x.event_id)).toEqual([Number(deal2.id)]);
    // Replayed once more, deal 1 ends skipped and deal 2 is done again: both keep their
    // judgement (in time, late), while they wait and after; deal 2's breach is still found.
    skipDeal1 = true;
    t.clock.advance(60_000);
    const third = await replayEvents(t.deps, { filter: { portalId: portals[0]!.row.id } });
    expect(third.queued).toBe(2);
    expect(await slaRows()).toEqual([[2, 1]]);
    // The SLA figures (rollups and the backlog past its deadline) say so too.
    const rule = { name: 'Invoice', slaSeconds: 30 };
    const day = 24 * 3600_000;
    const counts = await slaCounts(db, portals[0]!.row.id, rule, now() - day, now());
    expect(counts).toEqual({ total: 2, withinSla: 1 });
    await worker.runOnce();
    await worker.runOnce();
    const statuses = await db('events').orderBy('id').pluck('status');
    expect(statuses).toEqual(['skipped', 'processed']); // control: what the replay came to
    expect(await slaRows()).toEqual([[2, 1]]);
    const again = await lateSearch();
    expect(again.rows.map((x) => x.event_id)).toEqual([Number(deal2.id)]);
    // The incremental rows equal a recount from the events.
    const final = await listRollups(db);
    expect(final.filter((x) => x.kind === 'late' && x.n > 0).map((x) => [x.k1, x.n])).toEqual([
      ['Invoice', 1],
    ]);
    const expected = new Map<string, RollupRow>();
    addRows(expected, await recountRollups(db));
    expectSame(final, expected);
  });

  it('prunes its horizon a bounded number of rows at a time', async () => {
    const db = t.deps.db;
    const now = t.clock.now().getTime();
    const old = now - ROLLUP_HORIZON_MS.m - 3_600_000;
    // 2,500 minute rows past the horizon (portals × minutes × statuses), 10 within it.
    const rows = [];
    for (let i = 0; i < 2500; i++) {
      rows.push({
        kind: 'ev',
        grain: 'm',
        portal_id: 1 + (i % 50),
        bucket: old - Math.floor(i / 50) * 60_000,
        k1: 'E',
        k2: 'processed',
        n: 1,
      });
    }
    for (let i = 0; i < 10; i++) {
      rows.push({
        kind: 'ev',
        grain: 'm',
        portal_id: 1,
        bucket: now - i * 60_000,
        k1: 'E',
        k2: 'kept',
        n: 1,
      });
    }
    for (let i = 0; i < rows.length; i += 200) await db('rollups').insert(rows.slice(i, i + 200));
    const deleted: number[] = [];
    const onResponse = (response: unknown, q: { sql: string }) => {
      if (/^delete/i.test(q.sql))
        deleted.push(Number(Array.isArray(response) ? response.length : response));
    };
    db.on('query-response', onResponse);
    try {
      expect(await pruneRollups(db, now, 1000)).toBe(2500);
    } finally {
      db.off('query-response', onResponse);
    }
    expect(deleted.filter((d) => d > 0)).toEqual([1000, 1000, 500]);
    expect(Math.max(...deleted)).toBeLessThanOrEqual(1000);
    expect(Number((await db('rollups').where({ grain: 'm' }).count({ n: '*' }).first())?.n)).toBe(
      10,
    );
  });

  it('keep minute rows for their horizon only and never a backlog hour that still counts', async () => {
    const db = t.deps.db;
    const old = t.clock.now().getTime();
    await writeIntakeBatch(db, [intakeRow(portals[0]!, 1, { receivedAt: old })], old);
    await db.raw(
      `insert into rollups (kind, grain, portal_id, bucket, k1, k2, n, s, mx) values
         ('dur', 'm', ?, ?, '100', '', 1, 50, 50), ('pend', 'h', ?, ?, '', '', 0, 0, 0)`,
      [portals[0]!.row.id, old, portals[0]!.row.id, old - 3_600_000],
    );
    const later = old + ROLLUP_HORIZON_MS.m + 60_000;
    expect(await pruneRollups(db, later)).toBe(2);
    const left = await listRollups(db);
    expect(left.filter((r) => r.kind === 'pend')).toMatchObject([{ n: 1 }]);
    expect(left.filter((r) => r.grain === 'm')).toEqual([]);
    // Events pruned meanwhile: nothing of theirs goes with them (no cascade, no trigger).
    await db('jobs').delete();
    await db('events').delete();
    expect((await listRollups(db)).length).toBe(left.length);
  });

  it('rebuild from the CLI', async () => {
    await writeIntakeBatch(
      t.deps.db,
      [intakeRow(portals[0]!, 1, { receivedAt: t.clock.now().getTime() })],
      t.clock.now().getTime(),
    );
    await t.deps.db('rollups').delete();
    const r = await runCliIn(t, ['rollups', 'rebuild', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ rows: expect.any(Number) });
    expect((await statusFigures(t.deps.db, t.clock.now())).received).toBe(1);
    expect((await runCliIn(t, ['rollups', 'nonsense'])).code).toBe(2);
  });

  it('a log text search reads a bounded stretch of ids per page and goes on below it', async () => {
    const db = t.deps.db;
    const at = t.clock.now().getTime();
    const row = (i: number) => ({
      portal_id: portals[0]!.row.id,
      event: 'ONCRMDEALUPDATE',
      status: 'processed',
      received_at: at,
      body: i === 0 ? '{"needle":"only-in-the-oldest"}' : `{"deal":${i}}`,
    });
    const total = TEXT_SCAN_ROWS + 10;
    for (let i = 0; i < total; i += 500) {
      await db('events').insert(
        Array.from({ length: Math.min(500, total - i) }, (_, k) => row(i + k)),
      );
    }
    const first = await logPage(db, { text: 'only-in-the-oldest' }, 50);
    expect(first.rows).toEqual([]);
    expect(first.nextBeforeId).toBe(total + 1 - TEXT_SCAN_ROWS);
    const second = await logPage(
      db,
      { text: 'only-in-the-oldest', beforeId: first.nextBeforeId },
      50,
    );
    expect(second.rows.map((r) => r.id)).toEqual([1]);
    expect(second.nextBeforeId).toBeUndefined();
    // Control: a text in the newest stretch is found on the first page.
    expect((await logPage(db, { text: `"deal":${total - 1}` }, 50)).rows).toHaveLength(1);
  });
});
