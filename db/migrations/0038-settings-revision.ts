import type { Knex } from 'knex';

/**
 * A random number each write of a setting draws (db/stores/settings.ts `putSetting`), so a
 * reader can tell a setting is unchanged without reading its value: the processor keeps each
 * portal's parsed rule map and, per event, asks only for the map's `updated_at` and
 * `revision` (a 250 KB map took about 2 ms of the main thread to read and parse, per event).
 * `updated_at` alone could not say it: two saves in one millisecond, or a map removed and
 * saved again, keep it. Rows written before have none, and read as a version of their
 * `updated_at` alone until their next write. A nullable column without a default: no table
 * rewrite on either database, and the code before it never reads it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('settings', (t) => {
    t.bigInteger('revision').nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('settings', (t) => t.dropColumn('revision'));
}
