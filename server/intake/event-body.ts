import qs from 'qs';
import { BadRequestError } from '../lib/errors.js';
import { parseSimpleForm } from './form-fast.js';

/**
 * The `auth` block of a delivery; every key optional but member_id
 * (https://apidocs.bitrix24.com/api-reference/events/index.html).
 */
export interface DeliveryAuth {
  member_id: string;
  application_token?: string;
  access_token?: string;
  refresh_token?: string;
  expires?: string;
  expires_in?: string;
  scope?: string;
  domain?: string;
  server_endpoint?: string;
  client_endpoint?: string;
  status?: string;
  user_id?: string;
}

/** A parsed, shape-checked Bitrix24 event delivery. */
export interface Delivery {
  event: string;
  eventHandlerId: string | undefined;
  data: Record<string, unknown>;
  ts: number | undefined;
  auth: DeliveryAuth;
}

/** Hard limits: a delivery is a few dozen keys; anything beyond is hostile or broken. */
export const PARSE_LIMITS = { depth: 6, parameterLimit: 500, arrayLimit: 100 } as const;

const EVENT_NAME = /^[A-Z][A-Z0-9_]{1,63}$/;
const MEMBER_ID = /^[A-Za-z0-9_.-]{1,64}$/;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The general parser, with the limits; `parseSimpleForm` answers the usual bodies. */
export function parseForm(raw: string): Record<string, unknown> {
  try {
    return qs.parse(raw, {
      depth: PARSE_LIMITS.depth,
      strictDepth: true,
      parameterLimit: PARSE_LIMITS.parameterLimit,
      throwOnLimitExceeded: true,
      arrayLimit: PARSE_LIMITS.arrayLimit,
      allowPrototypes: false,
      charset: 'utf-8',
    }) as Record<string, unknown>;
  } catch (e) {
    throw new BadRequestError(`malformed body: ${(e as Error).message}`, 'BAD_EVENT_BODY');
  }
}

/**
 * Parses an `application/x-www-form-urlencoded` delivery with PHP bracket keys
 * (`data[FIELDS][ID]=1&auth[member_id]=…`). Express's default urlencoded parser would not
 * nest them, so we parse deliberately, with limits on depth, parameter count and arrays.
 */
export function parseEventBody(raw: string): Delivery {
  if (raw.length === 0) throw new BadRequestError('empty body', 'BAD_EVENT_BODY');
  const parsed = parseSimpleForm(raw, PARSE_LIMITS) ?? parseForm(raw);
  const event = parsed.event;
  if (typeof event !== 'string' || !EVENT_NAME.test(event.toUpperCase())) {
    throw new BadRequestError('missing or invalid "event"', 'BAD_EVENT_BODY');
  }
  const auth = parsed.auth;
  if (!isRecord(auth)) throw new BadRequestError('missing "auth"', 'BAD_EVENT_BODY');
  for (const [k, v] of Object.entries(auth)) {
    if (typeof v !== 'string')
      throw new BadRequestError(`auth[${k}] must be a string`, 'BAD_EVENT_BODY');
  }
  if (typeof auth.member_id !== 'string' || !MEMBER_ID.test(auth.member_id)) {
    throw new BadRequestError('missing or invalid auth[member_id]', 'BAD_EVENT_BODY');
  }
  const data = parsed.data ?? {};
  if (!isRecord(data)) throw new BadRequestError('"data" must be a map', 'BAD_EVENT_BODY');
  let ts: number | undefined;
  if (parsed.ts !== undefined) {
    if (typeof parsed.ts !== 'string' || !/^\d{1,12}$/.test(parsed.ts)) {
      throw new BadRequestError('"ts" must be unix seconds', 'BAD_EVENT_BODY');
    }
    ts = Number(parsed.ts);
  }
  const handlerId = parsed.event_handler_id;
  // Bitrix24 sends the binding's numeric id; no control characters (PostgreSQL refuses NUL).
  if (
    handlerId !== undefined &&
    (typeof handlerId !== 'string' || !/^[\x20-\x7e]{0,32}$/.test(handlerId))
  ) {
    throw new BadRequestError('invalid event_handler_id', 'BAD_EVENT_BODY');
  }
  return {
    event: event.toUpperCase(),
    eventHandlerId: handlerId,
    data,
    ts,
    auth: auth as unknown as DeliveryAuth,
  };
}
