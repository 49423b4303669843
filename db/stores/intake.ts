import type { Knex } from 'knex';
import type { EventRow } from './events.js';
import { jobRow, type NewJob } from './jobs.js';

/** One delivery ready to be written by the intake's group commit. */
export interface IntakeRow {
  event: Pick<
    EventRow,
    | 'portal_id'
    | 'member_id'
    | 'event'
    | 'event_handler_id'
    | 'entity_type'
    | 'entity_id'
    | 'ts'
    | 'body'
    | 'auth_enc'
    | 'dedupe_key'
    | 'reject_reason'
    | 'source'
    | 'received_at'
    | 'remote_addr'
  > & { status: 'received' | 'unverified' | 'rejected' };
  /** The job to create with the event (accepted deliveries only). */
  job: Omit<NewJob, 'event_id'> | null;
}

export interface IntakeOutcome {
  /** The stored event id (the original's, for a duplicate); null for rejected rows. */
  eventId: number | null;
  duplicate: boolean;
}

const CHUNK = 400;

/**
 * Writes a batch of deliveries in ONE transaction: new events, their jobs, and duplicate
 * counts on the originals of identical repeats. Returns an outcome per input row, in order.
 * Portable SQL: `ON CONFLICT DO NOTHING RETURNING` works on SQLite ≥ 3.35 and PostgreSQL.
 */
export async function writeIntakeBatch(
  db: Knex,
  rows: IntakeRow[],
  now: number,
): Promise<IntakeOutcome[]> {
  return db.transaction(async (trx) => {
    const outcomes: IntakeOutcome[] = rows.map(() => ({ eventId: null, duplicate: false }));
    // Identical deliveries inside one batch: the first is inserted, the rest count on it.
    const firstByKey = new Map<string, number>();
    const repeats = new Map<string, number>();
    const toInsert: number[] = [];
    rows.forEach((r, i) => {
      const key = r.event.dedupe_key;
      if (key === null) return void toInsert.push(i);
      if (firstByKey.has(key)) {
        repeats.set(key, (repeats.get(key) ?? 0) + 1);
        outcomes[i] = { eventId: null, duplicate: true };
      } else {
        firstByKey.set(key, i);
        toInsert.push(i);
      }
    });

    const idByKey = new Map<string, number>();
    const jobs: NewJob[] = [];
    for (let c = 0; c < toInsert.length; c += CHUNK) {
      const idx = toInsert.slice(c, c + CHUNK);
      const keyed = idx.filter((i) => rows[i]!.event.dedupe_key !== null);
      const unkeyed = idx.filter((i) => rows[i]!.event.dedupe_key === null);
      if (unkeyed.length) await trx('events').insert(unkeyed.map((i) => rows[i]!.event));
      if (!keyed.length) continue;
      const inserted = (await trx('events')
        .insert(keyed.map((i) => rows[i]!.event))
        .onConflict('dedupe_key')
        .ignore()
        .returning(['id', 'dedupe_key'])) as { id: number | string; dedupe_key: string }[];
      for (const r of inserted) idByKey.set(r.dedupe_key, Number(r.id));
      for (const i of keyed) {
        const row = rows[i]!;
        const key = row.event.dedupe_key!;
        const id = idByKey.get(key);
        if (id === undefined) {
          // Already stored by an earlier batch: a repeat of that one.
          outcomes[i] = { eventId: null, duplicate: true };
          repeats.set(key, (repeats.get(key) ?? 0) + 1);
          continue;
        }
        outcomes[i] = { eventId: id, duplicate: false };
        if (row.job) jobs.push({ ...row.job, event_id: id });
      }
    }
    for (let c = 0; c < jobs.length; c += CHUNK) {
      await trx('jobs').insert(jobs.slice(c, c + CHUNK).map((j) => jobRow(j, now)));
    }
    if (repeats.size) {
      const keys = [...repeats.keys()];
      const existing = new Map<string, number>();
      for (let c = 0; c < keys.length; c += CHUNK) {
        const found = (await trx('events')
          .whereIn('dedupe_key', keys.slice(c, c + CHUNK))
          .select('id', 'dedupe_key')) as { id: number | string; dedupe_key: string }[];
        for (const f of found) existing.set(f.dedupe_key, Number(f.id));
      }
      for (const [key, n] of repeats) {
        await trx('events').where({ dedupe_key: key }).increment('duplicates', n);
      }
      rows.forEach((r, i) => {
        const key = r.event.dedupe_key;
        if (key !== null && outcomes[i]!.duplicate)
          outcomes[i] = { eventId: existing.get(key) ?? null, duplicate: true };
      });
    }
    return outcomes;
  });
}
