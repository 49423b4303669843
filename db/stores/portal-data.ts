import type { Knex } from 'knex';

/**
 * An uninstall with "delete app data" (ONAPPUNINSTALL `data[CLEAN]=1`): the portal's tokens,
 * webhook URL and the stored bodies (and kept delivered tokens) of its events are erased.
 * The portal row and the events' status rows stay, so the log and `portals` still list them.
 */
export async function erasePortalData(db: Knex, portalId: number, now: number): Promise<void> {
  await db.transaction(async (trx) => {
    await trx('portals').where({ id: portalId }).update({
      access_token_enc: null,
      refresh_token_enc: null,
      token_expires_at: null,
      webhook_url_enc: null,
      updated_at: now,
    });
    await trx('events').where({ portal_id: portalId }).update({ body: null, auth_enc: null });
  });
}
