import type { Knex } from 'knex';
import { isPg } from '../connect.js';
import { RANGE_ID_MARGIN_MS } from './arrival.js';

/**
 * Rollups (db/README.md#figures-without-scans): counters the readers (dashboard, alert monitor, SLA
 * figures, `status`, `/metrics`) sum instead of scanning events. Every change of an event's status
 * (or of what its SLA figures depend on) and of an action run goes through `changeEvents` /
 * `changeActionRun`, which compute each row's contribution before and after the change and
 * add the difference, in the same transaction. The intake adds its batch's rows with one
 * upsert per distinct key (intakeBatchPlan). `recountRollups` recounts everything from the
 * tables (the rebuild, and the consistency test's reference).
 *
 * Kinds (table `rollups`, migration 0016):
 * - `ev`   events by receipt time: k1 event (none when rejected), k2 status; grains h, d, a.
 * - `pend` backlog (received, processing, unverified) by the hour it waits from: k1 `r` for
 *          an event replayed since it came in, by the hour of its last replay (`queued_at`,
 *          migration 0033); k1 empty for any other, by its receipt hour; k2 its status;
 *          grain h.
 * - `src`  events not delivered online (offline, sweep, replay…): k1 source; grain a.
 * - `dur`  processed events by processed_at: k1 the histogram bucket's upper bound in ms
 *          (`+Inf` last), n count, s sum of ms, mx largest ms; grains m, h.
 * - `sla`  rule matches (not skipped) of finished (processed, failed) events, or of events done
 *          once and replayed since (judged at that first completion, `sla_done_at`), by
 *          receipt time: k1 rule, k2 its SLA in ms when it matched; n decided, s within the
 *          SLA; grains m, h. A rule done is judged by when it was first done (`done_at`,
 *          migration 0035), not by its event; a match stored before 0035 by its event.
 * - `late` the same, done (the rule done, or processed with the rule done, or first done)
 *          past the SLA: grain a.
 * - `act`  action steps by started_at: k1 rule, k2 status; grains m, h.
 */

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

export type Grain = 'm' | 'h' | 'd' | 'a';
const GRAIN_MS: Record<Exclude<Grain, 'a'>, number> = { m: MINUTE, h: HOUR, d: DAY };

/** How long each grain's rows are kept (pruneRollups); `a` rows are kept for good. */
export const ROLLUP_HORIZON_MS = { m: 8 * DAY, h: 90 * DAY, d: 400 * DAY } as const;

/** Processing-time histogram: upper bounds in ms (p95 comes from these buckets). */
export const DURATION_BOUNDS_MS = [
  10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 1_800_000,
  3_600_000, 21_600_000, 86_400_000,
] as const;
const INF = '+Inf';

/** Every kind of rollup row (see the top of this file). */
const KINDS = ['ev', 'pend', 'src', 'dur', 'sla', 'late', 'act'];

/**
 * `ev`'s k1: the event's name, but none for a rejected delivery. Its name is whatever the
 * sender wrote, and anyone may post to the events URL: each new name made an all-time row
 * for good (up to 120 rejected rows a minute are stored, server/intake/reject-budget.ts).
 * The rejected row itself keeps the name and goes with retention.
 */
const evKey = (e: Pick<EventState, 'event' | 'status'>): string =>
  e.status === 'rejected' ? '' : e.event;
const EV_KEY_SQL = `case when status = 'rejected' then '' else event end`;

export const BACKLOG: readonly string[] = ['received', 'processing', 'unverified'];
/**
 * BACKLOG as SQL, written out: the partial index `events_backlog_requeued` (migration 0033)
 * serves a query only when its WHERE holds these very terms, literals and not parameters.
 */
const REQUEUED_BACKLOG_SQL =
  "queued_at is not null and status in ('received', 'processing', 'unverified')";
/** `pend`'s k1: `r` for an event replayed since it came in. */
const REPLAYED_SQL = `case when queued_at is null then '' else 'r' end`;
const FINAL_FOR_SLA: readonly string[] = ['processed', 'failed'];
/** Whether an event's rule matches are judged against their SLA (the `sla` and `late` rows). */
const judgedForSla = (e: Pick<EventState, 'status' | 'sla_done_at'>): boolean =>
  e.sla_done_at !== null || FINAL_FOR_SLA.includes(e.status);

export interface RollupRow {
  kind: string;
  grain: Grain;
  portal_id: number;
  bucket: number;
  k1: string;
  k2: string;
  n: number;
  s: number;
  mx: number;
}

/** What a row's contribution depends on. */
export interface EventState {
  id: number;
  portal_id: number | null;
  event: string;
  status: string;
  source: string;
  received_at: number;
  /** When it was last replayed (a replay, or "retry now" in the UI); null: never. */
  queued_at: number | null;
  processed_at: number | null;
  /** When it was first processed, if it was replayed since: its SLA is judged by it. */
  sla_done_at: number | null;
}
export interface MatchState {
  event_id: number;
  rule_name: string;
  status: string;
  sla_ms: number | null;
  /** When the rule was first done (migration 0035); null before, or not done. */
  done_at: number | null;
}
export interface ActionRunState {
  rule_name: string;
  status: string;
  started_at: number;
}

const floorTo = (t: number, ms: number) => t - (t % ms);
const bucketOf = (grain: Grain, t: number) => (grain === 'a' ? 0 : floorTo(t, GRAIN_MS[grain]));

export function durationBound(ms: number): string {
  for (const b of DURATION_BOUNDS_MS) if (ms <= b) return String(b);
  return INF;
}

/** Rollup deltas keyed by row identity; `add` accumulates, `rows` lists the non-zero ones. */
export class RollupDeltas {
  private map = new Map<string, RollupRow>();

  add(
    kind: string,
    grains: readonly Grain[],
    portalId: number | null,
    t: number,
    k1: string,
    k2: string,
    n: number,
    s = 0,
    mx = 0,
  ): void {
    for (const grain of grains) {
      const bucket = bucketOf(grain, t);
      const portal_id = portalId ?? 0;
      const key = `${kind}\u0000${grain}\u0000${portal_id}\u0000${bucket}\u0000${k1}\u0000${k2}`;
      const row = this.map.get(key);
      if (row) {
        row.n += n;
        row.s += s;
        row.mx = Math.max(row.mx, mx);
      } else this.map.set(key, { kind, grain, portal_id, bucket, k1, k2, n, s, mx });
    }
  }

  /**
   * An event's contribution, `sign` times: +1 after a change, −1 before it, +k for k new
   * events alike in everything counted (the intake's batches).
   */
  event(e: EventState, matches: readonly MatchState[], sign: number): void {
    const p = e.portal_id;
    this.add('ev', ['h', 'd', 'a'], p, e.received_at, evKey(e), e.status, sign);
    if (BACKLOG.includes(e.status)) {
      const replayed = e.queued_at !== null;
      const at = replayed ? e.queued_at! : e.received_at;
      this.add('pend', ['h'], p, at, replayed ? 'r' : '', e.status, sign);
    }
    if (e.source !== 'online') this.add('src', ['a'], p, 0, e.source, '', sign);
    // Processing time counts from the event's last queueing (a replay a week later took
    // seconds, not a week); the SLA below counts from its receipt.
    const took = e.processed_at === null ? null : e.processed_at - (e.queued_at ?? e.received_at);
    if (e.status === 'processed' && took !== null) {
      const mx = sign > 0 ? took : 0;
      this.add(
        'dur',
        ['m', 'h'],
        p,
        e.processed_at!,
        durationBound(took),
        '',
        sign,
        sign * took,
        mx,
      );
    }
    const duration = e.processed_at === null ? null : e.processed_at - e.received_at;
    // Judged once the event is finished (so the late search, which reads finished events,
    // finds a late rule), at its first completion, and so through its replays whatever they
    // come to: waiting again, skipped, failed (migration 0032). Each rule by its own steps:
    // when it was first done (migration 0035), while another rule of the event kept
    // retrying; a match stored before 0035 by the event's completion.
    if (!judgedForSla(e)) return;
    const first = e.sla_done_at === null ? null : e.sla_done_at - e.received_at;
    for (const m of matches) {
      if (m.status === 'skipped' || m.sla_ms === null) continue;
      const ruleTook = m.done_at === null ? null : m.done_at - e.received_at;
      const done =
        ruleTook !== null ||
        first !== null ||
        (e.status === 'processed' && m.status === 'done' && duration !== null);
      const within = done && (ruleTook ?? first ?? duration!) <= m.sla_ms ? 1 : 0;
      const sla = String(m.sla_ms);
      this.add('sla', ['m', 'h'], p, e.received_at, m.rule_name, sla, sign, sign * within);
      if (done && !within) this.add('late', ['a'], p, 0, m.rule_name, sla, sign);
    }
  }

  actionRun(portalId: number | null, r: ActionRunState, sign: 1 | -1): void {
    this.add('act', ['m', 'h'], portalId, r.started_at, r.rule_name, r.status, sign);
  }

  /**
   * The rows to write, in one fixed order (so concurrent PostgreSQL transactions lock
   * rollup rows in the same order and never deadlock on them); rows whose change cancels
   * out are left out.
   */
  rows(): RollupRow[] {
    return [...this.map.entries()]
      .filter(([, r]) => r.n !== 0 || r.s !== 0)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r);
  }
}

const COLUMNS = ['kind', 'grain', 'portal_id', 'bucket', 'k1', 'k2', 'n', 's', 'mx'] as const;
const KEY = 'kind, grain, portal_id, bucket, k1, k2';
/** Most rows per upsert; batches are cut in power-of-two chunks so few statement texts occur. */
const MAX_UPSERT_ROWS = 64;
const upsertTexts = new Map<number, string>();

export function rollupUpsertSql(n: number): string {
  let text = upsertTexts.get(n);
  if (text === undefined) {
    const tuple = `(${COLUMNS.map(() => '?').join(', ')})`;
    text =
      `insert into rollups (${COLUMNS.join(', ')}) values ${new Array<string>(n).fill(tuple).join(', ')} ` +
      `on conflict (${KEY}) do update set n = rollups.n + excluded.n, s = rollups.s + excluded.s, ` +
      'mx = case when excluded.mx > rollups.mx then excluded.mx else rollups.mx end';
    upsertTexts.set(n, text);
  }
  return text;
}

/** The upsert statements that add `rows` (see RollupDeltas.rows). */
export function rollupStatements(
  rows: readonly RollupRow[],
): Array<{ sql: string; bindings: Array<string | number> }> {
  const out = [];
  let at = 0;
  while (at < rows.length) {
    let size = MAX_UPSERT_ROWS;
    while (size > rows.length - at) size >>= 1;
    const bindings: Array<string | number> = [];
    for (const r of rows.slice(at, at + size)) for (const c of COLUMNS) bindings.push(r[c]);
    out.push({ sql: rollupUpsertSql(size), bindings });
    at += size;
  }
  return out;
}

export async function applyRollupDeltas(db: Knex, deltas: RollupDeltas): Promise<void> {
  for (const s of rollupStatements(deltas.rows())) await db.raw(s.sql, s.bindings);
}

/** Runs `fn` in the caller's transaction, or in a new one. */
function inTransaction<T>(db: Knex, fn: (trx: Knex) => Promise<T>): Promise<T> {
  return (db as Knex & { isTransaction?: boolean }).isTransaction ? fn(db) : db.transaction(fn);
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

const CHUNK = 500;
async function readStates(
  trx: Knex,
  ids: readonly number[],
  lock: boolean,
): Promise<{ events: EventState[]; matches: Map<number, MatchState[]> }> {
  const events: EventState[] = [];
  const matches = new Map<number, MatchState[]>();
  for (let i = 0; i < ids.length; i += CHUNK) {
    const q = trx('events')
      .whereIn('id', ids.slice(i, i + CHUNK))
      .select(
        'id',
        'portal_id',
        'event',
        'status',
        'source',
        'received_at',
        'queued_at',
        'processed_at',
        'sla_done_at',
      );
    if (lock && isPg(trx)) q.forUpdate();
    const rows = (await q) as Array<Record<string, unknown>>;
    const final: number[] = [];
    for (const r of rows) {
      const e: EventState = {
        id: Number(r.id),
        portal_id: num(r.portal_id),
        event: String(r.event),
        status: String(r.status),
        source: String(r.source),
        received_at: Number(r.received_at),
        queued_at: num(r.queued_at),
        processed_at: num(r.processed_at),
        sla_done_at: num(r.sla_done_at),
      };
      events.push(e);
      if (judgedForSla(e)) final.push(e.id);
    }
    if (final.length) {
      const ms = (await trx('rule_matches')
        .whereIn('event_id', final)
        .select('event_id', 'rule_name', 'status', 'sla_ms', 'done_at')) as Array<
        Record<string, unknown>
      >;
      for (const m of ms) {
        const id = Number(m.event_id);
        const list = matches.get(id) ?? [];
        list.push({
          event_id: id,
          rule_name: String(m.rule_name),
          status: String(m.status),
          sla_ms: num(m.sla_ms),
          done_at: num(m.done_at),
        });
        matches.set(id, list);
      }
    }
  }
  return { events, matches };
}

/**
 * THE way to change events (their status, processed_at, source) or their rule matches:
 * `change` runs in a transaction between a read of the events' state before (locked on
 * PostgreSQL) and after it, and the rollups move by the difference in the same transaction.
 */
export async function changeEvents<T>(
  db: Knex,
  ids: readonly number[],
  change: (trx: Knex) => Promise<T>,
): Promise<T> {
  return inTransaction(db, async (trx) => {
    const before = await readStates(trx, ids, true);
    const result = await change(trx);
    const after = await readStates(trx, ids, false);
    const deltas = new RollupDeltas();
    for (const e of before.events) deltas.event(e, before.matches.get(e.id) ?? [], -1);
    for (const e of after.events) deltas.event(e, after.matches.get(e.id) ?? [], 1);
    await applyRollupDeltas(trx, deltas);
    return result;
  });
}

/** Adds events just inserted in this transaction to the rollups. */
export async function countNewEvents(trx: Knex, ids: readonly number[]): Promise<void> {
  const after = await readStates(trx, ids, false);
  const deltas = new RollupDeltas();
  for (const e of after.events) deltas.event(e, after.matches.get(e.id) ?? [], 1);
  await applyRollupDeltas(trx, deltas);
}

/**
 * Takes events about to be erased that are still in the backlog out of every rollup (they
 * will never finish: left counted, they would stay in the backlog, its oldest age and the
 * status counts for good). Finished events keep their figures, as after a prune. Call it in
 * the transaction that deletes them, before the delete.
 */
export async function uncountPendingEvents(trx: Knex, ids: readonly number[]): Promise<void> {
  const before = await readStates(trx, ids, true);
  const deltas = new RollupDeltas();
  for (const e of before.events) if (BACKLOG.includes(e.status)) deltas.event(e, [], -1);
  await applyRollupDeltas(trx, deltas);
}

/** Records an action run's change (see recordActionRun) with its `act` rollups. */
export async function changeActionRun<T>(
  db: Knex,
  eventId: number,
  idempotencyKey: string,
  change: (trx: Knex) => Promise<T>,
): Promise<T> {
  return inTransaction(db, async (trx) => {
    const read = async () => {
      const q = trx('action_runs')
        .where({ idempotency_key: idempotencyKey })
        .select('rule_name', 'status', 'started_at');
      if (isPg(trx)) q.forUpdate();
      const r = (await q.first()) as Record<string, unknown> | undefined;
      return r
        ? {
            rule_name: String(r.rule_name),
            status: String(r.status),
            started_at: Number(r.started_at),
          }
        : undefined;
    };
    const before = await read();
    const result = await change(trx);
    const after = await read();
    const ev = (await trx('events').where({ id: eventId }).first('portal_id')) as
      { portal_id: number | null } | undefined;
    const portalId = num(ev?.portal_id);
    const deltas = new RollupDeltas();
    if (before) deltas.actionRun(portalId, before, -1);
    if (after) deltas.actionRun(portalId, after, 1);
    await applyRollupDeltas(trx, deltas);
    return result;
  });
}

// ---------------------------------------------------------------------------------------
// Recount and rebuild

type Raw = Array<Record<string, unknown>>;
const rowsOf = (answer: unknown): Raw =>
  (Array.isArray(answer) ? answer : (answer as { rows: Raw }).rows) as Raw;

const durationCase = (expr: string) =>
  `case ${DURATION_BOUNDS_MS.map((b) => `when ${expr} <= ${b} then '${b}'`).join(' ')} else '${INF}' end`;

/**
 * Every rollup row recounted from the tables with grouped SQL (independent of the
 * incremental code above), finer grains first and coarser ones summed from them. `eventIds`
 * limits it to those events (the consistency test counts what a prune takes away).
 */
export async function recountRollups(
  db: Knex,
  opts: { eventIds?: readonly number[] } = {},
): Promise<RollupRow[]> {
  const ids = opts.eventIds;
  if (ids && ids.length === 0) return [];
  const only = (col: string) =>
    ids ? ` and ${col} in (${ids.map((i) => Number(i)).join(', ')})` : '';
  const q = async (sql: string) => rowsOf(await db.raw(sql));
  const out = new RollupDeltas();
  const put = (kind: string, grains: Grain[], rows: Raw) => {
    for (const r of rows) {
      out.add(
        kind,
        grains,
        num(r.p),
        Number(r.b ?? 0),
        String(r.k1 ?? ''),
        String(r.k2 ?? ''),
        Number(r.n),
        Number(r.s ?? 0),
        Number(r.mx ?? 0),
      );
    }
  };
  const hour = (c: string) => `${c} - ${c} % ${HOUR}`;
  const minute = (c: string) => `${c} - ${c} % ${MINUTE}`;
  put(
    'ev',
    ['h', 'd', 'a'],
    await q(
      `select portal_id as p, ${hour('received_at')} as b, ${EV_KEY_SQL} as k1, status as k2, count(*) as n
         from events where 1 = 1${only('id')}
        group by portal_id, ${hour('received_at')}, ${EV_KEY_SQL}, status`,
    ),
  );
  put(
    'pend',
    ['h'],
    await q(
      `select portal_id as p, ${hour('coalesce(queued_at, received_at)')} as b, ${REPLAYED_SQL} as k1,
              status as k2, count(*) as n
         from events where status in ('received', 'processing', 'unverified')${only('id')}
        group by portal_id, ${hour('coalesce(queued_at, received_at)')}, ${REPLAYED_SQL}, status`,
    ),
  );
  put(
    'src',
    ['a'],
    await q(
      `select portal_id as p, source as k1, count(*) as n from events
        where source <> 'online'${only('id')} group by portal_id, source`,
    ),
  );
  const d = '(processed_at - coalesce(queued_at, received_at))';
  put(
    'dur',
    ['m', 'h'],
    await q(
      `select portal_id as p, ${minute('processed_at')} as b, ${durationCase(d)} as k1,
              count(*) as n, sum(${d}) as s, max(${d}) as mx
         from events where status = 'processed' and processed_at is not null${only('id')}
        group by portal_id, ${minute('processed_at')}, ${durationCase(d)}`,
    ),
  );
  // As RollupDeltas.event: a rule done is judged by when it was first done, else an event
  // done once by that first completion.
  const done = `(rm.done_at is not null or e.sla_done_at is not null or (e.status = 'processed' and rm.status = 'done'))`;
  const took = `(coalesce(rm.done_at, e.sla_done_at, e.processed_at) - e.received_at)`;
  const within = `case when ${done} and ${took} <= rm.sla_ms then 1 else 0 end`;
  const join = `from rule_matches rm join events e on e.id = rm.event_id
         where (e.status in ('processed', 'failed') or e.sla_done_at is not null)
           and rm.status <> 'skipped'
           and rm.sla_ms is not null${only('e.id')}`;
  put(
    'sla',
    ['m', 'h'],
    await q(
      `select e.portal_id as p, ${minute('e.received_at')} as b, rm.rule_name as k1,
              cast(rm.sla_ms as varchar(32)) as k2, count(*) as n, sum(${within}) as s
         ${join}
        group by e.portal_id, ${minute('e.received_at')}, rm.rule_name, rm.sla_ms`,
    ),
  );
  put(
    'late',
    ['a'],
    await q(
      `select e.portal_id as p, rm.rule_name as k1, cast(rm.sla_ms as varchar(32)) as k2, count(*) as n
         ${join} and ${done} and ${took} > rm.sla_ms
        group by e.portal_id, rm.rule_name, rm.sla_ms`,
    ),
  );
  put(
    'act',
    ['m', 'h'],
    await q(
      `select e.portal_id as p, ${minute('ar.started_at')} as b, ar.rule_name as k1, ar.status as k2,
              count(*) as n
         from action_runs ar join events e on e.id = ar.event_id where 1 = 1${only('ar.event_id')}
        group by e.portal_id, ${minute('ar.started_at')}, ar.rule_name, ar.status`,
    ),
  );
  return out.rows();
}

/**
 * Replaces every rollup with a recount (`npx b24hooks rollups rebuild`): after a restore,
 * or to take in events written without the rollups. History of events already pruned is
 * lost by it (they can no longer be counted).
 */
export async function rebuildRollups(db: Knex, now?: number): Promise<{ rows: number }> {
  const rows = await recountRollups(db);
  let pruned = 0;
  await db.transaction(async (trx) => {
    await trx('rollups').delete();
    for (const s of rollupStatements(rows)) await trx.raw(s.sql, s.bindings);
    // With `now`, rows already past the rollups' horizon go at once.
    if (now !== undefined) pruned = await pruneRollups(trx, now);
  });
  return { rows: rows.length - pruned };
}

/** Every stored rollup row (tests and the rebuild's report). */
export async function listRollups(db: Knex): Promise<RollupRow[]> {
  const rows = (await db('rollups').orderBy([
    'kind',
    'grain',
    'portal_id',
    'bucket',
    'k1',
    'k2',
  ])) as Raw;
  return rows.map((r) => ({
    kind: String(r.kind),
    grain: r.grain as Grain,
    portal_id: Number(r.portal_id),
    bucket: Number(r.bucket),
    k1: String(r.k1),
    k2: String(r.k2),
    n: Number(r.n),
    s: Number(r.s),
    mx: Number(r.mx),
  }));
}

/** Most rows one statement of `pruneRollups` removes. */
export const ROLLUP_PRUNE_BATCH = 2000;

/**
 * The rollups' own horizon: minute rows older than ROLLUP_HORIZON_MS.m, hourly and daily
 * ones older than theirs (`pend` rows only once they count nothing: a pending event keeps
 * its hour however old), and rows that count nothing any more. Event retention never
 * touches rollups. At most `batch` rows a statement: an hour of minute rows of a thousand
 * active portals is hundreds of thousands, and after a long stop the first pass has days of
 * them; on SQLite each statement holds the main thread and the write lock, and between two
 * the event loop turns (db/README.md).
 */
export async function pruneRollups(
  db: Knex,
  now: number,
  batch = ROLLUP_PRUNE_BATCH,
): Promise<number> {
  const key = ['kind', 'grain', 'portal_id', 'bucket', 'k1', 'k2'];
  const inBatches = async (narrow: (q: Knex.QueryBuilder) => Knex.QueryBuilder) => {
    let n = 0;
    for (;;) {
      // Row values: (the primary key) in (the next `batch` keys), on both databases.
      const keys = narrow(db('rollups').select(key)).limit(batch);
      const gone = await db('rollups').whereIn(key, keys).delete();
      n += gone;
      if (gone < batch) return n;
    }
  };
  let n = 0;
  for (const grain of ['m', 'h', 'd'] as const) {
    for (const kind of KINDS) {
      n += await inBatches((q) => {
        q.where({ kind, grain }).where('bucket', '<', now - ROLLUP_HORIZON_MS[grain]);
        return kind === 'pend' ? q.where('n', 0) : q;
      });
    }
  }
  // Backlog hours whose events were all processed: the oldest-pending lookup skips them.
  n += await inBatches((q) => q.where({ kind: 'pend', grain: 'h', n: 0 }));
  return n;
}

/**
 * A portal's rows of every kind and grain (its CLEAN uninstall), each delete through the
 * primary key's (kind, grain, portal_id) prefix: `where portal_id = ?` alone read them all.
 */
export async function deletePortalRollups(db: Knex, portalId: number): Promise<number> {
  let n = 0;
  for (const kind of KINDS) {
    n += await db('rollups')
      .where({ kind, portal_id: portalId })
      .whereIn('grain', ['m', 'h', 'd', 'a'])
      .delete();
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// Readers

/** `portalId` undefined: all portals; null: events of no known portal. */
const portalScope = (q: Knex.QueryBuilder, portalId: number | null | undefined) => {
  if (portalId !== undefined) q.where('portal_id', portalId ?? 0);
  return q;
};

/** Events per status, all time (`ev`, grain a). */
export async function countsByStatus(
  db: Knex,
  portalId?: number | null,
): Promise<Map<string, number>> {
  const rows = (await portalScope(
    db('rollups')
      .where({ kind: 'ev', grain: 'a' })
      .select({ k: 'k2' })
      .sum({ n: 'n' })
      .groupBy('k2'),
    portalId,
  )) as Raw;
  return new Map(rows.map((r) => [String(r.k), Number(r.n ?? 0)]));
}

/** Events per status and portal id (0: no known portal), all time: one read for `status`. */
export async function countsByStatusByPortal(db: Knex): Promise<Map<number, Map<string, number>>> {
  const rows = (await db('rollups')
    .where({ kind: 'ev', grain: 'a' })
    .select({ p: 'portal_id', k: 'k2' })
    .sum({ n: 'n' })
    .groupBy('portal_id', 'k2')) as Raw;
  const out = new Map<number, Map<string, number>>();
  for (const r of rows) {
    const p = Number(r.p);
    const m = out.get(p) ?? new Map<string, number>();
    m.set(String(r.k), Number(r.n ?? 0));
    out.set(p, m);
  }
  return out;
}

/** Backlog (received, processing, unverified) per portal id (0: no known portal). */
export async function backlogCounts(db: Knex): Promise<Map<number, number>> {
  const rows = (await db('rollups')
    .where({ kind: 'pend', grain: 'h' })
    .select({ p: 'portal_id' })
    .sum({ n: 'n' })
    .groupBy('portal_id')) as Raw;
  return new Map(rows.map((r) => [Number(r.p), Number(r.n ?? 0)]));
}

/**
 * Backlog events of one status oldestPendingAt reads at most to find the first never
 * replayed among replayed ones (then it settles for that one's hour).
 */
export const OLDEST_WINDOW_ROWS = 200;

/**
 * Since when the longest-waiting event of the backlog waits: an event replayed (or retried
 * from the UI) since that replay, any other since its receipt. A week-old deal replayed a
 * minute ago has waited a minute; a backlog alert or the dashboard saying a week would send
 * the reader after the wrong thing.
 *
 * The rollups say whether there is a backlog, and per status the oldest hour of its events
 * never replayed (`pend` rows with k1 empty). Then index reads, none of which grows with the
 * backlog:
 * - the earliest replay among the replayed backlog (`events_backlog_requeued` per portal,
 *   `events_backlog_requeued_at` per status for all portals: partial indexes holding those
 *   events only, migration 0033);
 * - per backlog status with events never replayed, its first event: for a portal the first by id
 *   (`events_portal_status_id`; ids follow arrival), for all portals the earliest received
 *   (`events_status_received`). When it was never replayed, it is the oldest of its status.
 * - When it was replayed, the status' events never replayed were all received since their
 *   oldest hour: the status' events from there on (by id from the last event received
 *   RANGE_ID_MARGIN_MS before it, or by receipt), at most OLDEST_WINDOW_ROWS of them. If
 *   replayed events fill all of those, that hour stands for the answer: at most an hour
 *   early, while more replayed events than that, received after the oldest event never
 *   replayed and in the same status, wait with it.
 * A min() over the oldest hour's events read every backlog event of that hour: under a
 * flood, a million rows and a two-second stall of the main thread at each alert check.
 */
export async function oldestPendingAt(
  db: Knex,
  portalId?: number | null,
): Promise<number | undefined> {
  const hours = (await portalScope(
    db('rollups').where({ kind: 'pend', grain: 'h' }).where('n', '>', 0),
    portalId,
  )
    .select('k1', 'k2')
    .min({ b: 'bucket' })
    .groupBy('k1', 'k2')) as Raw;
  if (hours.length === 0) return undefined;
  // Per status, the oldest hour of its events never replayed.
  const neverReplayedSince = new Map(
    hours.filter((h) => String(h.k1) === '').map((h) => [String(h.k2), Number(h.b)]),
  );
  const scoped = (q: Knex.QueryBuilder) => ofPortal(q, portalId);
  let oldest: number | null = null;
  const seen = (t: number | null | undefined) => {
    if (t !== null && t !== undefined && (oldest === null || t < oldest)) oldest = t;
  };
  type Row = Raw[number] | undefined;
  const earliestReplay = (q: Knex.QueryBuilder) =>
    q.whereRaw(REQUEUED_BACKLOG_SQL).orderBy('queued_at').first('queued_at') as Promise<Row>;
  if (portalId !== undefined) seen(num((await earliestReplay(scoped(db('events'))))?.queued_at));
  for (const status of BACKLOG) {
    if (portalId === undefined) {
      seen(num((await earliestReplay(db('events').where('status', status)))?.queued_at));
    }
    const since = neverReplayedSince.get(status);
    if (since === undefined) continue;
    const q = scoped(db('events').where('status', status));
    q.orderBy(portalId === undefined ? 'received_at' : 'id');
    const first = (await q.first('received_at', 'queued_at')) as Row;
    if (!first) continue;
    if (num(first.queued_at) === null) seen(num(first.received_at));
    else seen(await firstNeverReplayed(db, portalId, status, since));
  }
  return oldest ?? Math.min(...hours.map((h) => Number(h.b)));
}

/** Events of a portal (null: of no known portal; undefined: of all). */
const ofPortal = (q: Knex.QueryBuilder, portalId: number | null | undefined) => {
  if (portalId === null) q.whereNull('portal_id');
  else if (portalId !== undefined) q.where('portal_id', portalId);
  return q;
};

/**
 * The receipt of the first event in `status` never replayed, among at most
 * OLDEST_WINDOW_ROWS of the status' events received since `hour` (see oldestPendingAt):
 * undefined when there is none, `hour` when replayed events fill the window.
 */
async function firstNeverReplayed(
  db: Knex,
  portalId: number | null | undefined,
  status: string,
  hour: number,
): Promise<number | undefined> {
  const q = db('events').where('status', status);
  if (portalId === undefined) q.where('received_at', '>=', hour).orderBy('received_at');
  else {
    const before = (await ofPortal(db('events'), portalId)
      .where('received_at', '<=', hour - RANGE_ID_MARGIN_MS)
      .orderBy('received_at', 'desc')
      .first('id')) as Raw[number] | undefined;
    ofPortal(q, portalId).orderBy('id');
    if (before) q.where('id', '>', Number(before.id));
  }
  const rows = (await q.limit(OLDEST_WINDOW_ROWS).select('received_at', 'queued_at')) as Raw;
  let first: number | undefined;
  for (const r of rows) {
    const t = Number(r.received_at);
    if (num(r.queued_at) === null && (first === undefined || t < first)) first = t;
  }
  return first ?? (rows.length === OLDEST_WINDOW_ROWS ? hour : undefined);
}

/** Portals one statement of oldestPendingByPortal looks up (its bound parameters). */
const OLDEST_CHUNK = 500;

/**
 * oldestPendingAt of every portal with a backlog, by portal id (known portals only): the
 * rollups' oldest backlog hour of each in one read, then per 500 portals one statement whose
 * subqueries make the same index seeks as oldestPendingAt (a portal whose status begins with
 * a replayed event is then looked up on its own, while a replay waits). For `status`, where
 * one lookup per portal was four queries each, 20,000 with 5,000 portals.
 */
export async function oldestPendingByPortal(db: Knex): Promise<Map<number, number>> {
  const hours = (await db('rollups')
    .where({ kind: 'pend', grain: 'h' })
    .where('n', '>', 0)
    .where('portal_id', '>', 0)
    .select({ p: 'portal_id' })
    .min({ b: 'bucket' })
    .groupBy('portal_id')) as Raw;
  const out = new Map<number, number>();
  for (let i = 0; i < hours.length; i += OLDEST_CHUNK) {
    const chunk = hours.slice(i, i + OLDEST_CHUNK);
    const ids = chunk.map((r) => Number(r.p));
    // Each status' first event's receipt, or -1 when that event was replayed.
    const firsts = (await db('portals as p')
      .whereIn('p.id', ids)
      .select(
        { p: 'p.id' },
        ...BACKLOG.map((status, k) =>
          db('events as e')
            .whereRaw('e.portal_id = p.id')
            .where('e.status', status)
            .orderBy('e.id')
            .limit(1)
            .select(db.raw('case when e.queued_at is null then e.received_at else -1 end'))
            .as(`t${k}`),
        ),
        // The earliest replay among its replayed backlog (events_backlog_requeued).
        db('events as e')
          .whereRaw('e.portal_id = p.id')
          .whereRaw(REQUEUED_BACKLOG_SQL)
          .orderBy('e.queued_at')
          .limit(1)
          .select('e.queued_at')
          .as('rq'),
      )) as Raw;
    const byPortal = new Map(firsts.map((r) => [Number(r.p), r]));
    for (const h of chunk) {
      const p = Number(h.p);
      const r = byPortal.get(p);
      const times = BACKLOG.map((_, k) => num(r?.[`t${k}`]));
      // A status whose first event was replayed (after a replay, until it is worked off):
      // that portal is looked up on its own, a few statements more each.
      if (times.some((t) => t !== null && t < 0)) {
        const t = await oldestPendingAt(db, p);
        if (t !== undefined) out.set(p, t);
        continue;
      }
      let oldest = num(r?.rq);
      for (const t of times) if (t !== null && (oldest === null || t < oldest)) oldest = t;
      out.set(p, oldest ?? Number(h.b));
    }
  }
  return out;
}

/**
 * Rows of a kind over the window from `since` to now and on, at minute precision: minute
 * rows up to the next full hour, hourly rows after it (older than the minute horizon, the
 * window starts at its hour).
 */
export async function windowRows(
  db: Knex,
  kind: string,
  portalId: number | null | undefined,
  since: number,
  now: number,
  extra?: (q: Knex.QueryBuilder) => void,
): Promise<Raw> {
  const recent = now - since < ROLLUP_HORIZON_MS.m;
  const hourFrom = recent ? Math.ceil(since / HOUR) * HOUR : floorTo(since, HOUR);
  const base = (grain: Grain) => {
    const q = portalScope(db('rollups').where({ kind, grain }), portalId).select(
      'portal_id',
      'k1',
      'k2',
      'n',
      's',
      'mx',
    );
    extra?.(q);
    return q;
  };
  const hours = (await base('h').where('bucket', '>=', hourFrom)) as Raw;
  if (!recent || hourFrom === since) return hours;
  const minutes = (await base('m')
    .where('bucket', '>=', floorTo(since, MINUTE))
    .where('bucket', '<', hourFrom)) as Raw;
  return [...minutes, ...hours];
}

/**
 * windowRows of a kind, summed per portal id and k1 in the query, of a few portals (at most a
 * few hundred: bound parameters; seeks of their rows by primary key) or, with `portalIds`
 * undefined, of every portal (the period's rows through `rollups_period`): one read per grain,
 * where `windowRows` of each portal was a query of its own.
 */
export async function windowSumsByPortal(
  db: Knex,
  kind: string,
  portalIds: readonly number[] | undefined,
  since: number,
  now: number,
): Promise<Map<number, Map<string, { n: number; s: number }>>> {
  const out = new Map<number, Map<string, { n: number; s: number }>>();
  if (portalIds?.length === 0) return out;
  const recent = now - since < ROLLUP_HORIZON_MS.m;
  const hourFrom = recent ? Math.ceil(since / HOUR) * HOUR : floorTo(since, HOUR);
  const read = async (grain: Grain, range: (q: Knex.QueryBuilder) => void) => {
    const q = db('rollups')
      .where({ kind, grain })
      .select({ p: 'portal_id', k1: 'k1' })
      .sum({ n: 'n', s: 's' })
      .groupBy('portal_id', 'k1');
    if (portalIds) q.whereIn('portal_id', [...portalIds]);
    range(q);
    for (const r of (await q) as Raw) {
      const byK1 = out.get(Number(r.p)) ?? new Map<string, { n: number; s: number }>();
      const sum = byK1.get(String(r.k1)) ?? { n: 0, s: 0 };
      sum.n += Number(r.n ?? 0);
      sum.s += Number(r.s ?? 0);
      byK1.set(String(r.k1), sum);
      out.set(Number(r.p), byK1);
    }
  };
  await read('h', (q) => q.where('bucket', '>=', hourFrom));
  if (recent && hourFrom !== since) {
    await read('m', (q) =>
      q.where('bucket', '>=', floorTo(since, MINUTE)).where('bucket', '<', hourFrom),
    );
  }
  return out;
}

/** Count, average and p95 (from the histogram) of processing times since `since`. */
export async function processingTimes(
  db: Knex,
  portalId: number | null | undefined,
  since: number,
  now: number,
): Promise<{ n: number; avgMs: number; p95Ms: number }> {
  return timesOf(await windowRows(db, 'dur', portalId, since, now));
}

/** processingTimes of every portal, by portal id (0: no known portal), in one read. */
export async function processingTimesByPortal(
  db: Knex,
  since: number,
  now: number,
): Promise<Map<number, { n: number; avgMs: number; p95Ms: number }>> {
  const byPortal = new Map<number, Raw>();
  for (const r of await windowRows(db, 'dur', undefined, since, now)) {
    const p = Number(r.portal_id);
    const list = byPortal.get(p);
    if (list) list.push(r);
    else byPortal.set(p, [r]);
  }
  return new Map([...byPortal].map(([p, rows]) => [p, timesOf(rows)]));
}

/** Count, average and p95 (from the histogram's buckets) of `dur` rows. */
function timesOf(rows: Raw): { n: number; avgMs: number; p95Ms: number } {
  const byBound = new Map<string, { n: number; mx: number }>();
  let n = 0;
  let sum = 0;
  for (const r of rows) {
    const b = byBound.get(String(r.k1)) ?? { n: 0, mx: 0 };
    b.n += Number(r.n);
    b.mx = Math.max(b.mx, Number(r.mx));
    byBound.set(String(r.k1), b);
    n += Number(r.n);
    sum += Number(r.s);
  }
  if (n <= 0) return { n: 0, avgMs: 0, p95Ms: 0 };
  const rank = Math.max(1, Math.ceil(0.95 * n));
  let seen = 0;
  let p95 = 0;
  const bounds = [...DURATION_BOUNDS_MS.map(String), INF];
  for (const bound of bounds) {
    const b = byBound.get(bound);
    if (!b || b.n <= 0) continue;
    seen += b.n;
    if (seen >= rank) {
      // The bucket's largest time seen, never above its bound.
      p95 = bound === INF ? b.mx : Math.min(Number(bound), b.mx);
      break;
    }
  }
  return { n, avgMs: Math.round(sum / n), p95Ms: Math.round(p95) };
}

/**
 * Rule matches stored before rule matches kept their SLA (migration 0016): they take the
 * SLA the rule has now, so a rebuild counts them. Returns how many were filled in.
 */
export async function backfillRuleSla(
  db: Knex,
  portalId: number,
  ruleName: string,
  slaMs: number,
): Promise<number> {
  return db('rule_matches')
    .whereNull('sla_ms')
    .where('rule_name', ruleName)
    .whereIn('event_id', (q) => q.select('id').from('events').where('portal_id', portalId))
    .update({ sla_ms: slaMs });
}
