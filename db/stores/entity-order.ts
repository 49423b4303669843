import type { Knex } from 'knex';
import type { EventStatus } from './events.js';

/** The earlier event an event waits for: the first unfinished event of the same record. */
export interface HeldBehind {
  /** The earlier event's id, or null when it is no longer in the log (erased). */
  eventId: number | null;
  receivedAt: number | null;
  status: EventStatus | null;
  /** Its attempts so far: a `received` one with attempts is retrying. */
  attempts: number;
  /** Its last error (unmasked: the page masks it), or the job's when the event has none. */
  lastError: string | null;
}

const UNFINISHED = ['pending', 'running'];

/**
 * Which of these events wait because an earlier event of the same record is not final yet,
 * and behind which one. A job is claimed only while no earlier job of its `entity_key` is
 * pending or running (`claimable` in jobs.ts), so an event whose pending job is not the
 * first unfinished job of its entity waits for that first one: the event that holds the
 * line (retrying, running, or waiting for its portal). For the few events of one page only,
 * by index: their jobs by `jobs_event`, the first unfinished job of each of their entities by
 * `jobs_entity` (entity_key, status; on SQLite the row id comes with it, so the read covers
 * only the unfinished jobs of those entities), the earlier events by primary key.
 */
export async function heldBehindByEvent(
  db: Knex,
  eventIds: readonly number[],
): Promise<Map<number, HeldBehind>> {
  const out = new Map<number, HeldBehind>();
  if (eventIds.length === 0) return out;
  const own = (await db('jobs')
    .whereIn('event_id', eventIds)
    .where('status', 'pending')
    .whereNotNull('entity_key')
    .select('id', 'event_id', 'entity_key')) as Array<{
    id: number | string;
    event_id: number | string;
    entity_key: string;
  }>;
  if (own.length === 0) return out;
  const firsts = (await db('jobs')
    .whereIn('entity_key', [...new Set(own.map((j) => j.entity_key))])
    .whereIn('status', UNFINISHED)
    .groupBy('entity_key')
    .select('entity_key', db.raw('min(id) as id'))) as Array<{
    entity_key: string;
    id: number | string;
  }>;
  const firstOf = new Map(firsts.map((f) => [f.entity_key, Number(f.id)]));
  const held = own.flatMap((j) => {
    const first = firstOf.get(j.entity_key);
    return first !== undefined && first < Number(j.id)
      ? [{ eventId: Number(j.event_id), first }]
      : [];
  });
  if (held.length === 0) return out;
  const heads = (await db('jobs as j')
    .leftJoin('events as e', 'e.id', 'j.event_id')
    .whereIn('j.id', [...new Set(held.map((h) => h.first))])
    .select(
      'j.id as job_id',
      'j.last_error as job_error',
      'e.id',
      'e.received_at',
      'e.status',
      'e.attempts',
      'e.last_error',
    )) as Array<{
    job_id: number | string;
    job_error: string | null;
    id: number | string | null;
    received_at: number | string | null;
    status: EventStatus | null;
    attempts: number | string | null;
    last_error: string | null;
  }>;
  const byJob = new Map(heads.map((r) => [Number(r.job_id), r]));
  for (const h of held) {
    const r = byJob.get(h.first);
    out.set(h.eventId, {
      eventId: r?.id == null ? null : Number(r.id),
      receivedAt: r?.received_at == null ? null : Number(r.received_at),
      status: r?.status ?? null,
      attempts: Number(r?.attempts ?? 0),
      lastError: r?.last_error || r?.job_error || null,
    });
  }
  return out;
}
