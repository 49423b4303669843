import type { Knex } from 'knex';
import { applyEventFilter, type EventFilter } from './events.js';
import { jobRow } from './jobs.js';
import { changeEvents } from './rollups.js';

/** Statuses a replay takes by default: everything processing has finished with. */
export const REPLAYABLE = ['processed', 'failed', 'skipped'] as const;

/** App lifecycle events are not rule events. */
const LIFECYCLE = ['ONAPPINSTALL', 'ONAPPUPDATE', 'ONAPPUNINSTALL'];

/** Statuses a replay never takes: unproven deliveries, and the backlog (it has a job). */
const NOT_REPLAYABLE = ['received', 'processing', 'unverified', 'rejected'];

export function replayQuery(db: Knex, filter: EventFilter): Knex.QueryBuilder {
  const q = applyEventFilter(db('events'), filter);
  q.whereNotIn('events.event', LIFECYCLE);
  if (filter.status === undefined) q.whereIn('events.status', REPLAYABLE as unknown as string[]);
  else q.whereNotIn('events.status', NOT_REPLAYABLE);
  return q;
}

/** Most events one step of a replay count reads (see countReplayable). */
export const REPLAY_COUNT_STEP = 5000;

export interface ReplayCount {
  /** Events that would be replayed; `cap` when counting stopped there. */
  n: number;
  /** More than `n` events match: the count stopped at its cap. */
  capped: boolean;
}

/**
 * The replayable events of one stretch of receipt times, counted. The status test is kept
 * out of the indexes' reach (`|| ''`), so SQLite reads the stretch through the receipt-time
 * index and never a status index across every portal.
 */
async function countStretch(
  db: Knex,
  filter: EventFilter,
  lo: { at: number; inclusive: boolean },
  hi: { at: number; inclusive: boolean },
): Promise<number> {
  const { status, from: _from, to: _to, ...rest } = filter;
  const q = applyEventFilter(db('events'), rest)
    .where('events.received_at', lo.inclusive ? '>=' : '>', lo.at)
    .where('events.received_at', hi.inclusive ? '<=' : '<', hi.at)
    .whereNotIn('events.event', LIFECYCLE);
  if (status === undefined) {
    q.whereRaw(`(events.status || '') in (?, ?, ?)`, [...REPLAYABLE]);
  } else {
    const no = NOT_REPLAYABLE.includes(status) ? [] : [status];
    q.whereRaw(no.length ? `(events.status || '') = ?` : '1 = 0', no);
  }
  const r = (await q.count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(r?.n ?? 0);
}

/**
 * How many events a replay of `filter` takes. With a date range it counts in steps: each
 * finds where the next `step` events of the range end (the receipt-time index, alone or
 * after the portal) and counts the matching ones up to there, so no statement reads more
 * than one step however long the range; other work runs between steps, and counting stops
 * once it passes `cap` (the preview says "more than"). Without a range (a list of ids) it is
 * one count.
 */
export async function countReplayable(
  db: Knex,
  filter: EventFilter,
  opts: { cap?: number; step?: number } = {},
): Promise<ReplayCount> {
  const { from, to } = filter;
  if (from === undefined || to === undefined || filter.ids !== undefined) {
    const r = (await replayQuery(db, filter).count({ n: '*' }).first()) as
      { n: number | string } | undefined;
    return { n: Number(r?.n ?? 0), capped: false };
  }
  const step = opts.step ?? REPLAY_COUNT_STEP;
  let lo = { at: from, inclusive: true };
  let n = 0;
  for (;;) {
    const q = db('events')
      .where('received_at', lo.inclusive ? '>=' : '>', lo.at)
      .where('received_at', '<', to);
    if (filter.portalId !== undefined) q.where('portal_id', filter.portalId);
    const edge = (await q
      .orderBy('received_at')
      .offset(step - 1)
      .first('received_at')) as { received_at: number | string } | undefined;
    // Events received in the same millisecond as the edge come along in this step.
    const hi = edge
      ? { at: Number(edge.received_at), inclusive: true }
      : { at: to, inclusive: false };
    n += await countStretch(db, filter, lo, hi);
    if (opts.cap !== undefined && n > opts.cap) return { n: opts.cap, capped: true };
    if (!edge) return { n, capped: false };
    lo = { at: hi.at, inclusive: false };
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Queues one chunk of events for replay (ids above `afterId`, ascending) in one transaction:
 * each goes back to `received` with a new job. Events that matched no rule are evaluated
 * again; events that matched keep their rules and run the unfinished steps, or every step
 * in a new generation when `rerunSucceeded`.
 */
export async function queueReplayChunk(
  db: Knex,
  filter: EventFilter,
  opts: {
    afterId: number;
    limit: number;
    rerunSucceeded: boolean;
    maxAttempts: number;
    now: number;
  },
): Promise<{ ids: number[]; lastId: number }> {
  return db.transaction(async (trx) => {
    const rows = (await replayQuery(trx, filter)
      .where('events.id', '>', opts.afterId)
      .orderBy('events.id', 'asc')
      .limit(opts.limit)
      .select(
        'events.id',
        'events.portal_id',
        'events.event',
        'events.entity_type',
        'events.entity_id',
      )) as Array<{
      id: number | string;
      event: string;
      portal_id: number | null;
      entity_type: string | null;
      entity_id: string | null;
    }>;
    if (rows.length === 0) return { ids: [], lastId: opts.afterId };
    const ids = rows.map((r) => Number(r.id));
    const generations = await changeEvents(trx, ids, (t) =>
      requeue(t, ids, opts.rerunSucceeded, opts.now),
    );
    await trx('jobs').insert(
      rows.map((r) =>
        jobRow(
          {
            type: 'process_event',
            event_id: Number(r.id),
            portal_id: r.portal_id,
            entity_key: r.entity_id ? `${r.portal_id}:${r.entity_type}:${r.entity_id}` : null,
            payload: opts.rerunSucceeded
              ? JSON.stringify({ generation: generations.get(Number(r.id)) ?? 1 })
              : null,
            max_attempts: opts.maxAttempts,
            run_at: opts.now,
            topic: r.event,
          },
          opts.now,
        ),
      ),
    );
    return { ids, lastId: ids[ids.length - 1]! };
  });
}

/**
 * The events back to `received` (source `replay`, queued at `now`: their processing time
 * counts from it), their rule matches reset as the replay needs; the generation each
 * event's steps run in with `rerunSucceeded`. Runs inside changeEvents, so the rollups
 * follow.
 */
async function requeue(
  db: Knex,
  ids: number[],
  rerunSucceeded: boolean,
  now: number,
): Promise<Map<number, number>> {
  const active = new Set(
    (
      (await db('rule_matches')
        .whereIn('event_id', ids)
        .whereNot('status', 'skipped')
        .distinct('event_id')) as { event_id: number | string }[]
    ).map((r) => Number(r.event_id)),
  );
  const reevaluate = ids.filter((id) => !active.has(id));
  if (reevaluate.length) {
    await db('rule_matches').whereIn('event_id', reevaluate).delete();
    await db('events').whereIn('id', reevaluate).update({ evaluated_at: null });
  }
  const generations = new Map<number, number>();
  if (rerunSucceeded) {
    const g = (await db('action_runs')
      .whereIn('event_id', ids)
      .groupBy('event_id')
      .select('event_id')
      .max({ g: 'generation' })) as Array<{
      event_id: number | string;
      g: number | string | null;
    }>;
    for (const r of g) generations.set(Number(r.event_id), Number(r.g ?? 0) + 1);
    await db('rule_matches')
      .whereIn('event_id', ids)
      .where('status', 'done')
      .update({ status: 'matched' });
  }
  await db('events')
    .whereIn('id', ids)
    .update({
      status: 'received',
      last_error: null,
      processed_at: null,
      // The event page's "Started" is this run's start, after its "Replayed".
      processing_started_at: null,
      queued_at: now,
      // Its first completion, kept: the SLA was kept or missed then (migration 0032).
      sla_done_at: db.raw(
        `coalesce(sla_done_at, case when status = 'processed' then processed_at end)`,
      ),
      attempts: 0,
      source: 'replay',
    });
  return generations;
}

/** How many of these events are in each status, 500 ids a query. */
export async function statusCounts(
  db: Knex,
  ids: readonly number[],
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (let i = 0; i < ids.length; i += 500) {
    const rows = (await db('events')
      .whereIn('id', ids.slice(i, i + 500))
      .select('status')
      .count({ n: '*' })
      .groupBy('status')) as { status: string; n: number | string }[];
    for (const r of rows) out[r.status] = (out[r.status] ?? 0) + Number(r.n);
  }
  return out;
}

/** The first of these events that failed (by id), with its error; 500 ids a query. */
export async function firstFailed(
  db: Knex,
  ids: readonly number[],
): Promise<{ id: number; lastError: string | null } | undefined> {
  for (let i = 0; i < ids.length; i += 500) {
    const r = (await db('events')
      .whereIn('id', ids.slice(i, i + 500))
      .where('status', 'failed')
      .orderBy('id')
      .first('id', 'last_error')) as { id: number | string; last_error: string | null } | undefined;
    if (r) return { id: Number(r.id), lastError: r.last_error };
  }
  return undefined;
}

/** How many of these events are still waiting or running. */
export async function countUnfinished(db: Knex, ids: readonly number[]): Promise<number> {
  let n = 0;
  for (let i = 0; i < ids.length; i += 500) {
    const r = (await db('events')
      .whereIn('id', ids.slice(i, i + 500))
      .whereIn('status', ['received', 'processing', 'unverified'])
      .count({ n: '*' })
      .first()) as { n: number | string };
    n += Number(r.n);
  }
  return n;
}
