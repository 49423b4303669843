import { maskUrlPath } from '../lib/url-secrets.js';

/**
 * Last line of defence before something stored is shown in a page: stored bodies are already
 * masked at intake, but summaries and errors come from many places. Keys that name a secret
 * and query-string secrets are replaced, and URLs lose the keys in their paths (inbound
 * webhooks, bot tokens: server/lib/url-secrets.ts).
 */
const SECRET_KEY =
  /token|auth_id|refresh_id|secret|password|passwd|authorization|api[_-]?key|^auth$/i;
const MASK = '[masked]';

function maskString(s: string): string {
  return s
    .replace(
      /((?:access_token|refresh_token|application_token|auth|AUTH_ID|REFRESH_ID|APPLICATION_TOKEN|client_secret|token)=)[^&\s"']+/g,
      `$1${MASK}`,
    )
    .replace(/(\/rest\/\d+\/)[A-Za-z0-9]+(\/?)/g, `$1${MASK}$2`)
    .replace(/https?:\/\/[^\s"'<>]+/gi, (url) => maskUrlPath(url, MASK))
    .replace(/(\/bot)\d+:[A-Za-z0-9_-]+/g, `$1${MASK}`)
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, `$1${MASK}`);
}

function maskValue(v: unknown): unknown {
  if (typeof v === 'string') return maskString(v);
  if (Array.isArray(v)) return v.map(maskValue);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).map(([k, x]) => [
        k,
        SECRET_KEY.test(k) && x !== null && typeof x !== 'object' ? MASK : maskValue(x),
      ]),
    );
  }
  return v;
}

/** Pretty JSON (or the text) with every secret masked; '' for null. */
export function maskForView(text: string | null | undefined): string {
  if (text === null || text === undefined || text === '') return '';
  try {
    return JSON.stringify(maskValue(JSON.parse(text)), null, 2);
  } catch {
    return maskString(text);
  }
}
