/**
 * Credentials a URL carries in its path. Many webhook URLs are the credential themselves:
 * a Bitrix24 inbound webhook (`/rest/1/<key>/…`), a Telegram bot (`/bot<id>:<token>/…`),
 * Slack (`/services/T…/B…/<token>`), Discord (`/api/webhooks/<id>/<token>`), Zapier
 * (`/hooks/catch/<id>/<key>/`), Make, n8n and most others (a long random segment). A
 * segment counts as one when it follows `/rest/<n>/`, `/hooks/catch/<n>/`,
 * `/services/<a>/<b>/` or `/webhooks/<n>/`, when it is a JWT, or when it looks generated
 * (an extension such as `.json` aside): at least 16 characters of letters, digits, `-` and
 * `_` with both letters and digits, or at least 20 letters and digits in both cases. Words,
 * numbers and templates (`{{deal.ID}}`) do not; an order number such as `INV2026120412345`
 * does, which only masks more than needed.
 */

const TOKEN_LIKE = /^[A-Za-z0-9_-]{16,}$/;
const MIXED_CASE = /^(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9]{20,}$/;
const JWT = /^[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}$/;
const TELEGRAM_BOT = /^bot\d+:[A-Za-z0-9_-]+$/;

function secretSegment(segs: string[], i: number): 'all' | 'bot' | undefined {
  const s = segs[i]!;
  if (s === '') return undefined;
  if (TELEGRAM_BOT.test(s)) return 'bot';
  const after = (a: string, b?: string) =>
    i >= 2 &&
    segs[i - 2] === a &&
    /^\d+$/.test(segs[i - 1]!) &&
    (b === undefined || segs[i - 3] === b);
  if (after('rest') || after('catch', 'hooks') || after('webhooks')) return 'all';
  // Slack: /services/T…/B…/<token>.
  if (i >= 3 && segs[i - 3] === 'services' && /^[A-Z0-9]+$/.test(segs[i - 2]!)) return 'all';
  if (JWT.test(s)) return 'all';
  const bare = s.replace(/\.[A-Za-z]{1,5}$/, '');
  if (TOKEN_LIKE.test(bare) && /\d/.test(bare) && /[A-Za-z]/.test(bare)) return 'all';
  return MIXED_CASE.test(bare) ? 'all' : undefined;
}

/** The path (no query, no fragment) with each credential segment replaced by `mask`. */
export function maskPathSecrets(path: string, mask: string): string {
  const segs = path.split('/');
  return segs
    .map((s, i) => {
      const kind = secretSegment(segs, i);
      return kind === 'bot' ? `bot${mask}` : kind === 'all' ? mask : s;
    })
    .join('/');
}

/** scheme://authority, path, and the rest (`?…`, `#…`) of a URL as written. */
const PARTS = /^([a-z][a-z0-9+.-]*:\/\/[^/?#\s]*)([^?#\s]*)(.*)$/is;

/** Whether the URL's path carries a credential. */
export function urlPathHasSecret(url: string): boolean {
  const path = PARTS.exec(url)?.[2];
  if (!path) return false;
  const segs = path.split('/');
  return segs.some((_, i) => secretSegment(segs, i) !== undefined);
}

/** The URL as written, with the credentials in its path replaced by `mask`. */
export function maskUrlPath(url: string, mask: string): string {
  const m = PARTS.exec(url);
  return m ? `${m[1]}${maskPathSecrets(m[2]!, mask)}${m[3]}` : url;
}

/** What pages, exports and messages show instead of a credential. */
export const CREDENTIAL_MASK = '********';

const URL_USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#@\s]*@)/i;
/**
 * One `name=value` of a query, and the names that hold a credential. Two steps: one pattern
 * with the name words inside (`[?&][^=&#]*(?:token|…)[^=&#]*=`) took quadratic time on a
 * long name without `=` (a 64 KB URL, about a second of the main thread at each save).
 */
// The name holds no `?`: with it, each `?` of a run of them began a match that read the run
// again (64,000 of them, 4 s).
const URL_QUERY_PARAM = /([?&])([^=&#?]*)=([^&#?]*)/g;
const SECRET_PARAM_NAME = /token|key|secret|pass|auth|sig|api_id|apikey/i;
/** The query's `name=value` matches whose name holds a credential (m[3]: the value). */
export const secretParams = (url: string) =>
  [...url.matchAll(URL_QUERY_PARAM)].filter((m) => SECRET_PARAM_NAME.test(m[2] ?? ''));

/**
 * Whether a URL carries a credential: user:password, a key or token in the query, or one in
 * the path (a webhook URL that is its own key, above).
 */
export function urlHasCredentials(url: string): boolean {
  return URL_USERINFO.test(url) || secretParams(url).length > 0 || urlPathHasSecret(url);
}

/** The URL with its credentials replaced by MASK. */
export function maskUrlText(url: string): string {
  return maskUrlPath(
    url
      .replace(URL_USERINFO, `$1${CREDENTIAL_MASK}@`)
      .replace(URL_QUERY_PARAM, (whole, sep: string, name: string) =>
        SECRET_PARAM_NAME.test(name) ? `${sep}${name}=${CREDENTIAL_MASK}` : whole,
      ),
    CREDENTIAL_MASK,
  );
}
