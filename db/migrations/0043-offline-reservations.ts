import type { Knex } from 'knex';

/**
 * The offline batches a drain reserved (`event.offline.get` with `clear=0` answers a
 * process_id) and has not settled yet. Bitrix24 never releases a reservation by itself: a
 * reserved record is read again only by its process_id, and deleted with every other record
 * after PROCESS_ID_LIFETIME, about 34 days (CORE rest lib/api/event.php `offlineGet` reads
 * unreserved records only; lib/eventoffline.php `cleanProcessAgent`), and `event.offline.error`
 * releases only records not yet marked as errors (`markError`, ERROR = 0). A batch left by a
 * crash, a refused report or an error record that failed again was lost; kept here, the
 * portal's next drain reads it again first (server/recovery/offline.ts).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('offline_reservations', (t) => {
    t.integer('portal_id').notNullable();
    t.string('process_id', 64).notNullable();
    /** 1: a batch of error records (read with error=1). */
    t.integer('error').notNullable().defaultTo(0);
    t.bigInteger('reserved_at').notNullable();
    t.primary(['portal_id', 'process_id']);
    // Retention removes held batches older than RETENTION_DAYS (Bitrix24 deletes the records
    // themselves about 34 days after their change).
    t.index(['reserved_at'], 'offline_reservations_reserved');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('offline_reservations');
}
