import type { Knex } from 'knex';
import { BACKLOG_STATUSES } from './events.js';

/** A replay confirmed in the UI (`replay_runs`). */
export interface ReplayRunRow {
  id: number;
  portal_id: number;
  user_id: number;
  /** The form as submitted: from, to, event, status. */
  filter: Record<string, string>;
  rerun_succeeded: boolean;
  matched: number;
  queued: number;
  created_at: number;
}

/** Where the events of a replay are now. */
export interface ReplayProgress {
  queued: number;
  /** Received, processing or waiting for a retry. */
  waiting: number;
  processed: number;
  failed: number;
  skipped: number;
  /** Deleted since, or in a status a replay does not lead to. */
  other: number;
  done: boolean;
}

/** Event ids written or counted per statement, with the event loop let run between. */
const RUN_CHUNK = 500;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Records a replay, then the ids of the events it queued, 500 a statement with the event loop
 * let run between (one transaction for all held the one main connection, and the intake
 * writer's turn at it, until every id was written).
 */
export async function createReplayRun(
  db: Knex,
  run: Omit<ReplayRunRow, 'id' | 'queued'>,
  eventIds: readonly number[],
): Promise<number> {
  const [row] = (await db('replay_runs')
    .insert({ ...run, filter: JSON.stringify(run.filter), queued: eventIds.length })
    .returning('id')) as Array<{ id: number } | number>;
  const id = typeof row === 'object' ? Number(row.id) : Number(row);
  for (let i = 0; i < eventIds.length; i += RUN_CHUNK) {
    await db('replay_run_events').insert(
      eventIds.slice(i, i + RUN_CHUNK).map((event_id) => ({ run_id: id, event_id })),
    );
    await nextTurn();
  }
  return id;
}

export async function getReplayRun(db: Knex, id: number): Promise<ReplayRunRow | undefined> {
  const r = (await db('replay_runs').where({ id }).first()) as Record<string, unknown> | undefined;
  if (!r) return undefined;
  return {
    id: Number(r.id),
    portal_id: Number(r.portal_id),
    user_id: Number(r.user_id),
    filter: JSON.parse(String(r.filter)) as Record<string, string>,
    rerun_succeeded: Boolean(r.rerun_succeeded),
    matched: Number(r.matched),
    queued: Number(r.queued),
    created_at: Number(r.created_at),
  };
}

/**
 * Counts a replay's events by their current status. An event replayed or retried again later
 * counts where that later run left it.
 */
export async function replayProgress(db: Knex, run: ReplayRunRow): Promise<ReplayProgress> {
  // In steps of RUN_CHUNK ids, the event loop let run between: a synchronous count over the
  // whole run held the main thread 116–300 ms a poll at 500,000 events.
  const by = new Map<string, number>();
  for (let after = 0; ;) {
    const ids = (
      (await db('replay_run_events')
        .where('run_id', run.id)
        .andWhere('event_id', '>', after)
        .orderBy('event_id')
        .limit(RUN_CHUNK)
        .select('event_id')) as Array<{ event_id: number | string }>
    ).map((r) => Number(r.event_id));
    if (ids.length === 0) break;
    const rows = (await db('events')
      .whereIn('id', ids)
      .groupBy('status')
      .select('status')
      .count({ n: '*' })) as Array<{ status: string; n: number | string }>;
    for (const r of rows) by.set(r.status, (by.get(r.status) ?? 0) + Number(r.n));
    after = ids[ids.length - 1]!;
    if (ids.length < RUN_CHUNK) break;
    await nextTurn();
  }
  const waiting = BACKLOG_STATUSES.reduce((s, st) => s + (by.get(st) ?? 0), 0);
  const processed = by.get('processed') ?? 0;
  const failed = by.get('failed') ?? 0;
  const skipped = by.get('skipped') ?? 0;
  return {
    queued: run.queued,
    waiting,
    processed,
    failed,
    skipped,
    other: run.queued - waiting - processed - failed - skipped,
    done: waiting === 0,
  };
}
