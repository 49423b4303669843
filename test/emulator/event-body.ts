import { encodePhpForm, flattenPhp, type FormPair, type PhpValue } from './php-form.js';

/** Tokens placed in an event's `auth`, present only when a user is behind the event. */
export interface EventAuthTokens {
  accessToken: string;
  /** Only events declared with `sendRefreshToken` (ONAPPINSTALL, ONAPPUPDATE, ONOFFLINEEVENT). */
  refreshToken?: string;
  /** Unix seconds. */
  expires: number;
  expiresIn: number;
  userId: number;
}

export interface EventAuthInput {
  domain: string;
  clientEndpoint: string;
  serverEndpoint: string;
  memberId: string;
  applicationToken: string;
  scope: string;
  status: string;
  /** Null for robot-triggered events, ONAPPUNINSTALL and outgoing webhooks. */
  tokens: EventAuthTokens | null;
}

/**
 * The `auth` block in Bitrix24's key order. With tokens the order is the one of the real
 * ONCRMCONTACTADD capture (test/fixtures/events/README.md); where `refresh_token` sits is not
 * captured, so it follows `access_token` as in the OAuth token response (an inference). Without
 * tokens the order is that of the ONAPPUNINSTALL documentation example.
 */
export function buildEventAuth(input: EventAuthInput): Record<string, string | number> {
  const t = input.tokens;
  if (!t) {
    return {
      domain: input.domain,
      server_endpoint: input.serverEndpoint,
      client_endpoint: input.clientEndpoint,
      member_id: input.memberId,
      application_token: input.applicationToken,
    };
  }
  const auth: Record<string, string | number> = { access_token: t.accessToken };
  if (t.refreshToken !== undefined) auth['refresh_token'] = t.refreshToken;
  Object.assign(auth, {
    expires: t.expires,
    expires_in: t.expiresIn,
    scope: input.scope,
    domain: input.domain,
    server_endpoint: input.serverEndpoint,
    status: input.status,
    client_endpoint: input.clientEndpoint,
    member_id: input.memberId,
    user_id: t.userId,
    application_token: input.applicationToken,
  });
  return auth;
}

export interface EventEnvelope {
  event: string;
  eventHandlerId: number | string;
  data: PhpValue;
  /** Unix seconds at which the portal queued the event. */
  ts: number | string;
  auth: Record<string, string | number>;
}

/** The pairs of an event delivery, top-level order `event, event_handler_id, data, ts, auth`. */
export function eventBodyPairs(envelope: EventEnvelope): FormPair[] {
  return [
    ['event', envelope.event],
    ['event_handler_id', String(envelope.eventHandlerId)],
    ...flattenPhp('data', envelope.data),
    ['ts', String(envelope.ts)],
    ...flattenPhp('auth', envelope.auth),
  ];
}

/** The exact wire body of an event delivery. */
export function buildEventBody(envelope: EventEnvelope): string {
  return encodePhpForm(eventBodyPairs(envelope));
}
