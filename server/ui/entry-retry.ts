import type { IncomingHttpHeaders } from 'node:http';
import type { SecretBox } from '../lib/crypto.js';

/**
 * Frame entries that could not be checked now (the portal's REST budget busy, or the portal
 * not answering) are sent again by their retry page. Bitrix24 lets only the app's main page
 * reload its frame: in a placement (the deal tab) BX24.reloadWindow is denied (bitrix rest
 * module, app.layout template: `denyInterface(['setTitle', 'setScroll', 'reloadWindow'])`
 * for every placement but DEFAULT) and the call is dropped, so a page that only asked
 * Bitrix24 to reload stayed a dead end there. The page posts back the entry sealed with the
 * token key (AES-GCM; any instance opens it), so AUTH_ID and REFRESH_ID never appear in it
 * readable, and nothing is kept in memory for a stranger's flood to fill.
 */
export const ENTRY_RETRY_FIELD = 'ENTRY_RETRY';
/** How long a sealed entry may be sent again (its page sends it after a few seconds). */
export const ENTRY_RETRY_KEEP_MS = 60_000;
/** A real entry is about 1 KB; a larger body is not sealed (the page falls back to a reload). */
const MAX_SEALED_BODY = 16 * 1024;
const PURPOSE = 'b24hooks frame entry retry';

interface Sealed {
  p: typeof PURPOSE;
  at: number;
  path: string;
  query: string;
  raw: string;
}

/** The entry sealed for its retry page, or undefined when it is too large to carry. */
export function sealForRetry(
  box: Pick<SecretBox, 'encrypt'>,
  entry: { path: string; query: string; raw: string },
  now: number,
): string | undefined {
  if (entry.raw.length > MAX_SEALED_BODY) return undefined;
  const sealed: Sealed = { p: PURPOSE, at: now, ...entry };
  return box.encrypt(JSON.stringify(sealed));
}

/**
 * The body of an entry sealed here, posted again within ENTRY_RETRY_KEEP_MS to the same
 * path and query; undefined for anything else (forged, altered, expired, another URL).
 */
export function openForRetry(
  box: Pick<SecretBox, 'decrypt'>,
  sealed: string,
  path: string,
  query: string,
  now: number,
): string | undefined {
  if (sealed.length > MAX_SEALED_BODY * 2) return undefined;
  let entry: Partial<Sealed>;
  try {
    entry = JSON.parse(box.decrypt(sealed)) as Partial<Sealed>;
  } catch {
    return undefined;
  }
  if (entry.p !== PURPOSE || typeof entry.at !== 'number' || typeof entry.raw !== 'string') {
    return undefined;
  }
  if (now - entry.at >= ENTRY_RETRY_KEEP_MS || now < entry.at) return undefined;
  return entry.path === path && entry.query === query ? entry.raw : undefined;
}

/**
 * Whether a retry was posted by our own retry page (the browser says the post is
 * same-origin, or names our origin): no other site can make a victim's browser send a
 * sealed entry again, so the login-CSRF check the first post passed keeps its meaning.
 */
export function postedByOwnPage(headers: IncomingHttpHeaders, appUrl: string): boolean {
  if (headers['sec-fetch-site'] === 'same-origin') return true;
  const origin = headers.origin;
  if (origin === undefined) return headers['sec-fetch-site'] === undefined;
  try {
    return new URL(origin).origin === new URL(appUrl).origin;
  } catch {
    return false;
  }
}
