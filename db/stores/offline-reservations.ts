import type { Knex } from 'knex';

/** An offline batch reserved under a process_id and not settled yet (migration 0043). */
export interface HeldBatch {
  processId: string;
  /** A batch of error records (read again with error=1). */
  error: boolean;
}

/** Keeps a reserved batch before anything of it is stored (a second keep changes nothing). */
export async function holdBatch(
  db: Knex,
  portalId: number,
  batch: HeldBatch,
  now: number,
): Promise<void> {
  await db('offline_reservations')
    .insert({
      portal_id: portalId,
      process_id: batch.processId,
      error: batch.error ? 1 : 0,
      reserved_at: now,
    })
    .onConflict(['portal_id', 'process_id'])
    .ignore();
}

/** The batch is settled (cleared, reported, or gone from the portal). */
export async function releaseBatch(db: Knex, portalId: number, processId: string): Promise<void> {
  await db('offline_reservations').where({ portal_id: portalId, process_id: processId }).delete();
}

/** The portal's batches still held, oldest first. */
export async function heldBatches(db: Knex, portalId: number): Promise<HeldBatch[]> {
  const rows = (await db('offline_reservations')
    .where({ portal_id: portalId })
    .orderBy('reserved_at')
    .select('process_id', 'error')) as Array<{ process_id: string; error: number | string }>;
  return rows.map((r) => ({ processId: String(r.process_id), error: Number(r.error) === 1 }));
}
