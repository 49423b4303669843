import type { Knex } from 'knex';

/** The database's own clock in ms: every instance reads the same one. */
const DB_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/**
 * PostgreSQL: adds one request to `key`'s leaky bucket, drained by `drainPerSec` since the
 * last request, in one atomic statement (concurrent callers queue on the row); returns the
 * level after it and the bucket's time. Reservations that must still wait keep the level
 * above the burst, so the next caller waits behind them.
 */
export async function reserveSlot(
  db: Knex,
  key: string,
  drainPerSec: number,
): Promise<{ level: number; at: number }> {
  const answer = (await db.raw(
    `insert into rate_buckets as b (key, level, at) values (?, 1, ${DB_NOW_MS})
     on conflict (key) do update set
       level = greatest(0, b.level - greatest(0, excluded.at - b.at) / 1000.0 * ?) + 1,
       at = greatest(excluded.at, b.at)
     returning level, at`,
    [key, drainPerSec],
  )) as { rows: Array<{ level: number; at: number }> };
  const row = answer.rows[0]!;
  return { level: Number(row.level), at: Number(row.at) };
}

/**
 * PostgreSQL: `key`'s bucket level now (drained on the database's clock), without adding to
 * it; 0 for a key never used. A look before a reservation that may be skipped.
 */
export async function peekLevel(db: Knex, key: string, drainPerSec: number): Promise<number> {
  const answer = (await db.raw(
    `select greatest(0, level - greatest(0, ${DB_NOW_MS} - at) / 1000.0 * ?) as level
     from rate_buckets where key = ?`,
    [drainPerSec, key],
  )) as { rows: Array<{ level: number }> };
  return Number(answer.rows[0]?.level ?? 0);
}

/**
 * PostgreSQL: reserveSlot only if the level after it stays at or below `ceiling`, in the same
 * one statement (a look and a reservation apart would let a burst of callers all look at the
 * same low level); undefined, and nothing added, otherwise.
 */
export async function reserveSlotBelow(
  db: Knex,
  key: string,
  drainPerSec: number,
  ceiling: number,
): Promise<{ level: number; at: number } | undefined> {
  const drained = `greatest(0, b.level - greatest(0, excluded.at - b.at) / 1000.0 * ?)`;
  const answer = (await db.raw(
    `insert into rate_buckets as b (key, level, at) values (?, 1, ${DB_NOW_MS})
     on conflict (key) do update set
       level = ${drained} + 1,
       at = greatest(excluded.at, b.at)
     where ${drained} + 1 <= ?
     returning level, at`,
    [key, drainPerSec, drainPerSec, ceiling],
  )) as { rows: Array<{ level: number; at: number }> };
  const row = answer.rows[0];
  return row ? { level: Number(row.level), at: Number(row.at) } : undefined;
}
