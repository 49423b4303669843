import type { Knex } from 'knex';

/**
 * `portals.lapse_since`: since when a portal whose plan refused the app (PAYMENT_REQUIRED)
 * may have sent us nothing. Bitrix24 skips every handler of an app whose payment expired,
 * offline ones included (CORE rest lib/event/callback.php `__callStatic`, PAYMENT_EXPIRED),
 * so the changes of the lapse never arrive; once the portal takes the app again they are
 * swept from this time (server/recovery/lapses.ts), then it is cleared. The time is that of
 * the portal's last delivery before the pause was noticed (the lapse began after it).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    t.bigInteger('lapse_since').nullable();
    t.index(['lapse_since'], 'portals_lapse_since');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    t.dropIndex(['lapse_since'], 'portals_lapse_since');
    t.dropColumn('lapse_since');
  });
}
