import type { Knex } from 'knex';

/**
 * When a record's data (or a whole portal's) was erased on request. A recovery sweep or an
 * offline queue drained after it found the record's changes with no event covering them and
 * queued them again: the erased deal came back into the log and was sent to the accounting
 * system once more. A change made before the erasure is now covered by it
 * (db/stores/recovery.ts latestCoveringReceipt). Ids only: no name or field of the record.
 * `entity_type` and `entity_id` are `*` for a whole portal's erasure. An uninstall's erasure
 * removes its portal's rows with everything else (every table with a portal_id).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('erased_entities', (t) => {
    t.integer('portal_id').notNullable();
    t.string('entity_type', 64).notNullable();
    t.string('entity_id', 64).notNullable();
    t.bigInteger('erased_at').notNullable();
    t.primary(['portal_id', 'entity_type', 'entity_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('erased_entities');
}
