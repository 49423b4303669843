import type { Delivery } from './event-body.js';

/** Keys of `auth` that are secrets: never stored in clear, never shown. */
export const TOKEN_KEYS = ['access_token', 'refresh_token', 'application_token'] as const;

export const MASK = '[masked]';

/** The delivery as stored in the log: JSON with every token replaced by a mask. */
export function maskedBody(d: Delivery): string {
  const auth: Record<string, string> = { ...(d.auth as unknown as Record<string, string>) };
  for (const k of TOKEN_KEYS) if (auth[k] !== undefined) auth[k] = MASK;
  return JSON.stringify({
    event: d.event,
    event_handler_id: d.eventHandlerId,
    data: d.data,
    ts: d.ts,
    auth,
  });
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
