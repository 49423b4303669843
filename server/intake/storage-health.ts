import type { Metrics } from '../metrics.js';

/**
 * Whether the database takes writes, as the last write attempts showed: a refused write
 * (locked beyond the busy timeout, disk full) marks it failing, a committed one writable.
 * Kept in a gauge, so /metrics shows it and /healthz reads it. Real time, not the app clock.
 */
type Gauges = Pick<Metrics, 'storageWriteFailure'>;

/** How long a refused write keeps /healthz at 503 when nothing has been written since. */
export const STORAGE_FAILURE_WINDOW_MS = 30_000;

export function markStorageFailing(m: Gauges): void {
  m.storageWriteFailure.set(Date.now() / 1000);
}

export function markStorageWritable(m: Gauges): void {
  m.storageWriteFailure.set(0);
}

/**
 * The time of the last refused write if no write succeeded since and it is recent, else
 * undefined. Without writes there is no fresh evidence, so an old failure stops counting.
 */
export async function storageFailingSince(m: Gauges): Promise<Date | undefined> {
  const value = (await m.storageWriteFailure.get()).values[0]?.value ?? 0;
  if (value <= 0 || Date.now() - value * 1000 > STORAGE_FAILURE_WINDOW_MS) return undefined;
  return new Date(value * 1000);
}
