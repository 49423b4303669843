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
