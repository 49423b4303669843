import type { Knex } from 'knex';

/**
 * Alerts about a portal are written in the portal's language, so the portal keeps
 * the language Bitrix24 names at install (`LANG` of the installer POST, `LANGUAGE_ID` of
 * ONAPPINSTALL: https://apidocs.bitrix24.com/api-reference/common/events/on-app-install.html). Null
 * for portals installed before: English.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    t.string('lang', 8).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    t.dropColumn('lang');
  });
}
