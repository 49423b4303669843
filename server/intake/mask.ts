import type { Delivery } from './event-body.js';

/** Keys of `auth` that are secrets: never stored in clear, never shown. */
export const TOKEN_KEYS = ['access_token', 'refresh_token', 'application_token'] as const;

export const MASK = '[masked]';

/**
 * Keys of `auth` that are not secret and stay readable in the log. Every other value is
 * masked: a misspelt or unknown key (`auth[ACCESS_TOKEN]`, a forger's guess) may still
 * carry a token, and the body of a refused delivery is kept too.
 */
const PLAIN_AUTH_KEYS = new Set([
  'member_id',
  'domain',
  'scope',
  'status',
  'expires',
  'expires_in',
  'user_id',
  'client_endpoint',
  'server_endpoint',
]);

/**
 * The delivery as stored in the log: JSON with every `auth` value but the plain ones masked. `dataJson`
 * is `JSON.stringify(d.data)` when the caller has it already (the intake hashes it too).
 */
export function maskedBody(d: Delivery, dataJson = JSON.stringify(d.data)): string {
  const auth: Record<string, string> = {};
  for (const [k, v] of Object.entries(d.auth)) auth[k] = PLAIN_AUTH_KEYS.has(k) ? v : MASK;
  // The same text as JSON.stringify({ event, event_handler_id, data, ts, auth }).
  const head = JSON.stringify({ event: d.event, event_handler_id: d.eventHandlerId });
  const tail = JSON.stringify({ ts: d.ts, auth });
  return `${head.slice(0, -1)},"data":${dataJson},${tail.slice(1)}`;
}

/** The tokens of a delivery, for encrypted keeping while it waits for verification. */
export function deliveredTokens(d: Delivery): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of TOKEN_KEYS) {
    const v = d.auth[k];
    if (v) out[k] = v;
  }
  for (const k of [
    'expires',
    'expires_in',
    'client_endpoint',
    'server_endpoint',
    'domain',
    'user_id',
    'scope',
  ] as const) {
    const v = d.auth[k];
    if (v) out[k] = v;
  }
  return out;
}
