import type { Knex } from 'knex';
import { getSetting } from '../../db/stores/settings.js';

/**
 * Our `auth_connector` for offline bindings. Bitrix24 takes it from the top-level request's
 * auth data only (core `rest` module, lib/api/event.php `eventBind` and lib/oauth/auth.php):
 * every offline bind, unbind and `event.offline.*` call sends it on the request itself (a
 * direct call, or a batch that carries it), never inside a sub-command. REST writes made
 * with it would not create offline records for our binding.
 */
export const OFFLINE_CONNECTOR = 'b24hooks';
/**
 * Bound online so the portal tells us when offline records wait (empty `data`), at most once
 * per `options[minTimeout]` seconds (B24_OFFLINE_MIN_TIMEOUT): each notice costs REST calls.
 */
export const OFFLINE_NOTICE = 'ONOFFLINEEVENT';

/**
 * The plan feature that allows `auth_connector` (DOCS api-reference/common/system/feature-get.md).
 * Below Pro it is off, and the core refuses any request that carries the parameter, a batch
 * as a whole (CORE classes/general/rest.php `CRestServer::checkAuth`, `canUseConnectors`):
 * 403 WRONG_LICENSE "This feature is not enabled for the current license: auth_connector".
 */
export const SOURCE_KEYS_FEATURE = 'rest_auth_connector';

/** Portal setting: the `auth_connector` its offline bindings were made with ('' = none). */
export const OFFLINE_CONNECTOR_KEY = 'offlineConnector';

/** Whether a `feature.get` value means the feature is there (box portals: `<lang>_selfhosted`). */
export const featureOn = (value: unknown): boolean =>
  String(value ?? '') === 'Y' || /_selfhosted$/i.test(String(value ?? ''));

/** The connector the portal's offline bindings carry; portals bound before it was kept: ours. */
export async function offlineConnectorOf(db: Knex, memberId: string): Promise<string> {
  const kept = await getSetting<unknown>(db, memberId, OFFLINE_CONNECTOR_KEY);
  return typeof kept === 'string' ? kept : OFFLINE_CONNECTOR;
}

/** A refusal because the plan has no source keys. */
export const noSourceKeys = (e: { bitrixCode?: string; description?: string }): boolean =>
  e.bitrixCode === 'WRONG_LICENSE' && /auth_connector/i.test(e.description ?? '');
