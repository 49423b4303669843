import type { Knex } from 'knex';

/**
 * Install proof and lifecycle floods (issues 17, 18, 19):
 * - `portals.install_confirmed_at`: when the OAuth server confirmed the install with our
 *   client credentials (same member_id and portal). Null while an install taken during an
 *   OAuth outage waits for its ONAPPINSTALL to confirm it. Portals stored before this
 *   migration count as confirmed at their install time.
 * - At most one pending proof job per portal (`entity_key` `proof:<portal id>`), however
 *   many ONAPPINSTALL posts arrive: a unique partial index, inserts do nothing on conflict.
 * - Setting scopes leave the member_id key space: the default map's scope `default` could be
 *   claimed by a portal with member_id `default`, so it becomes `:default` (a colon never
 *   occurs in a member_id).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('portals', (t) => {
    t.bigInteger('install_confirmed_at').nullable();
  });
  await knex('portals').update({ install_confirmed_at: knex.ref('installed_at') });
  await knex.raw(
    `create unique index jobs_one_pending_proof on jobs (entity_key)
     where status = 'pending' and entity_key like 'proof:%'`,
  );
  await knex('settings').where({ scope: 'default' }).update({ scope: ':default' });
}

export async function down(knex: Knex): Promise<void> {
  await knex('settings').where({ scope: ':default' }).update({ scope: 'default' });
  await knex.raw('drop index if exists jobs_one_pending_proof');
  await knex.schema.alterTable('portals', (t) => t.dropColumn('install_confirmed_at'));
}
