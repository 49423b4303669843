import { createHash } from 'node:crypto';
import { formatBitrixDate } from './crm-store.js';
import { isRecord, randomHex } from './http-util.js';
import type { PhpValue } from './php-form.js';
import {
  accessDenied,
  param,
  paramString,
  RestError,
  wrongAuthType,
  type CallContext,
  type MethodHandler,
} from './rest-error.js';
import type { PortalState } from './state.js';

/**
 * Offline events (DOCS:api-reference/events/offline-events.md): the portal keeps ONE record per
 * (event, object, connector) with the latest state, whether or not any handler is reachable, until
 * the app reads and clears it.
 */
export interface OfflineRecord {
  id: number;
  event: string;
  data: PhpValue;
  /** 32 hex characters, stable for (event, data): the same object keeps the same id. */
  messageId: string;
  connectorId: string;
  userId: number;
  /** Milliseconds of the last change. */
  timestampX: number;
  /** Set while a `clear=0` read holds the record. */
  processId: string;
  reservedAt: number;
  error: boolean;
}

export interface OfflineQueue {
  records: OfflineRecord[];
  seq: number;
  /** When ONOFFLINEEVENT was last sent (its `options[minTimeout]` throttles it). */
  notifiedAt: number;
  /**
   * The plan's `rest_offline_extended` feature (`feature.get`): the confirm mode (`clear=0`,
   * `event.offline.clear|error`). Without it `clear=0` answers 403 WRONG_LICENSE.
   */
  extended: boolean;
  /**
   * The plan's `rest_auth_connector` feature (`feature.get`): source keys. Without it any
   * request that carries `auth_connector` answers 403 WRONG_LICENSE (rest-server.ts).
   */
  sourceKeys: boolean;
}

export const createOfflineQueue = (): OfflineQueue => ({
  records: [],
  seq: 0,
  notifiedAt: 0,
  extended: true,
  sourceKeys: true,
});

const messageIdOf = (event: string, data: PhpValue): string =>
  createHash('md5')
    .update(`${event}|${JSON.stringify(data)}`)
    .digest('hex');

/**
 * Records `event` for every offline binding of it, replacing an earlier record of the same
 * object. A change made by the app's own REST call (`authConnector` given, '' when the call
 * had none) is not recorded for the binding of that connector (the core's loop break).
 * Returns true when ONOFFLINEEVENT is due.
 */
export function queueOffline(
  portal: PortalState,
  event: string,
  data: PhpValue,
  userId: number | null,
  authConnector: string | undefined,
): boolean {
  if (portal.installState !== 'installed') return false;
  const now = portal.ctx.now();
  let queued = false;
  for (const b of portal.bindings) {
    if (b.eventType !== 'offline' || b.event !== event) continue;
    // A change made by this app's own REST call is not recorded for its binding of the same
    // connector ('' included): CORE:lib/event/sender.php `send()` records only when the
    // caller's client_id or auth_connector differs from the binding's.
    if (authConnector !== undefined && b.connectorId === authConnector) continue;
    const messageId = messageIdOf(event, data);
    const q = portal.offline;
    // A repeat updates the record that is neither reserved nor marked as an error; a
    // reserved one stays with its batch and the repeat becomes a new record
    // (DOCS event-offline-get.md, MESSAGE_ID).
    const existing = q.records.find(
      (r) =>
        r.event === event &&
        r.messageId === messageId &&
        r.connectorId === b.connectorId &&
        r.processId === '' &&
        !r.error,
    );
    if (existing) {
      existing.timestampX = now;
      existing.userId = userId ?? existing.userId;
    } else {
      q.records.push({
        id: ++q.seq,
        event,
        data,
        messageId,
        connectorId: b.connectorId,
        userId: userId ?? 0,
        timestampX: now,
        processId: '',
        reservedAt: 0,
        error: false,
      });
    }
    queued = true;
  }
  if (!queued) return false;
  const notify = portal.bindings.filter(
    (b) => b.event === 'ONOFFLINEEVENT' && b.eventType === 'online',
  );
  if (notify.length === 0) return false;
  // At most one ONOFFLINEEVENT per `options[minTimeout]` seconds, default 1; 0 = on every
  // hit (DOCS:api-reference/events/on-offline-event.md; the option is declared only for this
  // event in CORE:lib/api/event.php `onRestServiceBuildDescription`). One clock per portal
  // rather than per binding is a simplification: we bind it once.
  const minTimeoutMs =
    Math.min(...notify.map((b) => Number(b.options['minTimeout'] ?? 1) || 0)) * 1000;
  if (now - portal.offline.notifiedAt < minTimeoutMs) return false;
  portal.offline.notifiedAt = now;
  return true;
}

function requireAdmin(call: CallContext): void {
  if (call.via !== 'oauth') throw wrongAuthType();
  if (!call.isAdmin)
    throw accessDenied('Access denied! Offline events require administrator access rights');
}

export const wrongLicense = (feature: string): RestError =>
  new RestError(
    403,
    'WRONG_LICENSE',
    `This feature is not enabled for the current license: ${feature}`,
  );

const argumentError = (description: string): RestError =>
  new RestError(400, 'ERROR_ARGUMENT', description);

const FIELD_VALUE: Record<string, (r: OfflineRecord) => string | number> = {
  ID: (r) => r.id,
  TIMESTAMP_X: (r) => r.timestampX,
  EVENT_NAME: (r) => r.event,
  MESSAGE_ID: (r) => r.messageId,
};

/** `event.offline.list` also filters and sorts by these. */
const LIST_FIELD_VALUE: Record<string, (r: OfflineRecord) => string | number> = {
  ...FIELD_VALUE,
  PROCESS_ID: (r) => r.processId,
  ERROR: (r) => (r.error ? 1 : 0),
};

/** `{ID: 5}`, `{'>ID': 5}`, `{'>=TIMESTAMP_X': '2026-…'}`, `{EVENT_NAME: 'ONCRMDEALUPDATE'}`. */
function matches(
  r: OfflineRecord,
  filter: unknown,
  fields: Record<string, (r: OfflineRecord) => string | number>,
): boolean {
  if (filter === undefined || filter === null || filter === '') return true;
  if (!isRecord(filter)) throw argumentError('The filter is not an array.');
  for (const [rawKey, rawValue] of Object.entries(filter)) {
    const m = /^(>=|<=|>|<|=|!)?(.+)$/.exec(rawKey.toUpperCase());
    const op = m?.[1] ?? '=';
    const field = m?.[2] ?? '';
    if (op === '!') throw argumentError(`Filter operation not allowed: ${op}`);
    const get = fields[field];
    if (!get) throw argumentError(`Filter field not allowed: ${field}`);
    if (typeof rawValue === 'object' && rawValue !== null) {
      throw argumentError(`The value of an argument '${field}' has an invalid type`);
    }
    const have = get(r);
    let want: string | number = String(rawValue);
    if (field === 'TIMESTAMP_X') want = Date.parse(want);
    else if (field === 'ID' || field === 'ERROR') want = Number(want);
    else if (field === 'EVENT_NAME') want = want.toUpperCase();
    const ok =
      op === '>'
        ? have > want
        : op === '<'
          ? have < want
          : op === '>='
            ? have >= want
            : op === '<='
              ? have <= want
              : have === want;
    if (!ok) return false;
  }
  return true;
}

function sorted(
  records: OfflineRecord[],
  order: unknown,
  fields: Record<string, (r: OfflineRecord) => string | number>,
  fallback: string,
): OfflineRecord[] {
  if (order !== undefined && order !== null && order !== '' && !isRecord(order)) {
    throw argumentError('The order is not an array.');
  }
  const keys: Array<[string, number]> = [];
  for (const [k, v] of Object.entries(isRecord(order) ? order : {})) {
    const field = k.toUpperCase();
    if (!fields[field]) throw argumentError(`Order field not allowed: ${field}`);
    const dir = String(v).toUpperCase();
    if (dir !== 'ASC' && dir !== 'DESC') {
      throw argumentError('Order direction should be one of {ASC|DESC}');
    }
    keys.push([field, dir === 'DESC' ? -1 : 1]);
  }
  if (keys.length === 0) keys.push([fallback, 1]);
  keys.push(['ID', 1]);
  return [...records].sort((a, b) => {
    for (const [k, dir] of keys) {
      const x = fields[k]!(a);
      const y = fields[k]!(b);
      if (x !== y) return x < y ? -dir : dir;
    }
    return 0;
  });
}

const shape = (r: OfflineRecord) => ({
  ID: String(r.id),
  TIMESTAMP_X: formatBitrixDate(r.timestampX),
  EVENT_NAME: r.event,
  EVENT_DATA: r.data,
  EVENT_ADDITIONAL: { user_id: String(r.userId) },
  MESSAGE_ID: r.messageId,
});

const flag = (params: Record<string, unknown>, name: string, fallback: number): number => {
  const v = param(params, name);
  if (v === undefined || v === null || v === '') return fallback;
  return Number(v) ? 1 : 0;
};

/** An array parameter (a PHP form list arrives as an object with index keys), or undefined. */
const arrayParam = (v: unknown): string[] | undefined =>
  Array.isArray(v) ? v.map(String) : isRecord(v) ? Object.values(v).map(String) : undefined;

/**
 * A `clear=0` reservation is never released by the portal: `event.offline.get` without a
 * process_id reads records whose PROCESS_ID is empty only, a reserved one is read again only
 * by its process_id (CORE rest lib/api/event.php, the offline get), and every record, reserved
 * or not, is deleted about 34 days after its change (lib/eventoffline.php `cleanProcessAgent`,
 * PROCESS_ID_LIFETIME 2952000 s; not modelled).
 */
const isReserved = (r: OfflineRecord) => r.processId !== '';

/**
 * `event.offline.get` (DOCS event-offline-get.md): `clear=1` returns and deletes, `clear=0`
 * (the plan's `rest_offline_extended`, else WRONG_LICENSE) reserves the batch under a
 * process_id; `process_id` re-reads a batch (deleting all of it with `clear=1`). Only the
 * records of the given `auth_connector` (none: records without a source); `error=1` only
 * the records marked by `event.offline.error`.
 */
const offlineGet: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const q = portal.offline;
  const now = portal.ctx.now();
  const clear = flag(params, 'clear', 1);
  if (clear === 0 && !q.extended) throw wrongLicense('extended offline events handling');
  const error = flag(params, 'error', 0);
  const connector = call.authConnector;
  const rawLimit = Number(param(params, 'limit') ?? 50);
  if (!Number.isInteger(rawLimit) || rawLimit < 1) {
    throw argumentError('Value must be positive integer');
  }
  const limit = Math.min(rawLimit, 1000);
  const filter = param(params, 'filter');
  const given = paramString(params, 'process_id');
  const candidates = q.records.filter(
    (r) =>
      r.connectorId === connector &&
      r.error === (error === 1) &&
      (given ? r.processId === given : !isReserved(r)) &&
      matches(r, filter, FIELD_VALUE),
  );
  const picked = sorted(candidates, param(params, 'order'), FIELD_VALUE, 'TIMESTAMP_X').slice(
    0,
    limit,
  );
  const events = picked.map(shape);
  if (clear) {
    const gone = given ? candidates : picked;
    q.records = q.records.filter((r) => !gone.includes(r));
    return { result: { process_id: given || null, events } };
  }
  const processId = given || randomHex(16);
  for (const r of picked) {
    r.processId = processId;
    r.reservedAt = now;
  }
  return { result: { process_id: processId, events } };
};

function requireProcessId(params: Record<string, unknown>): string {
  const processId = paramString(params, 'process_id');
  if (processId === '') throw argumentError("Argument 'PROCESS_ID' is null or empty");
  return processId;
}

function messageIdsOf(params: Record<string, unknown>, required: boolean): string[] | undefined {
  const raw = param(params, 'message_id');
  if (raw === undefined || raw === null || raw === '') {
    if (required) throw argumentError('Value must be array of MESSAGE_ID values');
    return undefined;
  }
  const ids = arrayParam(raw);
  if (!ids) throw argumentError('Value must be array of MESSAGE_ID values');
  return ids;
}

/**
 * `event.offline.clear` (DOCS event-offline-clear.md): deletes records of the batch, all of
 * them or those named by `message_id` (checked first) or `id`; another connector's batch is
 * not touched.
 */
const offlineClear: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const processId = requireProcessId(params);
  const connector = call.authConnector;
  const messageIds = messageIdsOf(params, false);
  if (messageIds?.some((m) => m.length !== 32)) {
    throw argumentError('Value must be array of MESSAGE_ID values');
  }
  const rawIds = param(params, 'id');
  const ids =
    rawIds === undefined || rawIds === null || rawIds === '' ? undefined : arrayParam(rawIds);
  if (
    rawIds !== undefined &&
    rawIds !== null &&
    rawIds !== '' &&
    (!ids || ids.some((i) => !(Number(i) >= 1)))
  ) {
    throw argumentError('Value must be array of integers');
  }
  portal.offline.records = portal.offline.records.filter((r) => {
    if (r.processId !== processId || r.connectorId !== connector) return true;
    if (messageIds?.length) return !messageIds.includes(r.messageId);
    if (ids?.length) return !ids.includes(String(r.id));
    return false;
  });
  return { result: true };
};

/**
 * `event.offline.error` (DOCS event-offline-error.md): marks the batch's records named by
 * `message_id` as errors and releases them (read again with `error=1`). Records with the same
 * MESSAGE_ID that are not errors and not in this batch are deleted, reserved by another batch
 * or not; an error record is left as it is, still reserved if it was (CORE rest
 * lib/eventoffline.php `markError`: every statement has ERROR = 0).
 */
const offlineError: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const processId = requireProcessId(params);
  const connector = call.authConnector;
  const messageIds = messageIdsOf(params, true)!;
  if (messageIds.length === 0) return { result: true };
  portal.offline.records = portal.offline.records.filter((r) => {
    if (r.connectorId !== connector || !messageIds.includes(r.messageId)) return true;
    if (r.processId === processId) {
      if (!r.error) {
        r.error = true;
        r.processId = '';
        r.reservedAt = 0;
      }
      return true;
    }
    return r.error;
  });
  return { result: true };
};

/**
 * `event.offline.list` (DOCS event-offline-list.md): reads without reserving, pages of 50,
 * filter and order also by PROCESS_ID and ERROR, newest ID last by default.
 */
const offlineList: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const filter = param(params, 'filter');
  const all = sorted(
    portal.offline.records.filter((r) => matches(r, filter, LIST_FIELD_VALUE)),
    param(params, 'order'),
    LIST_FIELD_VALUE,
    'ID',
  );
  const start = Math.max(0, Number(param(params, 'start') ?? 0) || 0);
  const page = all.slice(start, start + 50).map((r) => ({
    ...shape(r),
    PROCESS_ID: r.processId,
    ERROR: r.error ? '1' : '0',
  }));
  const out: { result: unknown; total: number; next?: number } = {
    result: page,
    total: all.length,
  };
  if (start + 50 < all.length) out.next = start + 50;
  return out;
};

/**
 * `feature.get` (DOCS api-reference/common/system/feature-get.md, codes `rest_offline_extended`
 * and `rest_auth_connector`): `{value: 'Y'|'N'}`; an unknown code answers Y, as the core does
 * not check codes.
 */
const featureGet: MethodHandler = (params, _call, portal) => {
  const code = paramString(params, 'CODE');
  if (code === '' || code === '0') throw new RestError(400, 'CODE_EMPTY', "CODE can't be empty");
  const on =
    code === 'rest_offline_extended'
      ? portal.offline.extended
      : code === 'rest_auth_connector'
        ? portal.offline.sourceKeys
        : true;
  return { result: { value: on ? 'Y' : 'N' } };
};

export const OFFLINE_METHODS: Readonly<Record<string, MethodHandler>> = {
  'event.offline.get': offlineGet,
  'event.offline.clear': offlineClear,
  'event.offline.error': offlineError,
  'event.offline.list': offlineList,
  'feature.get': featureGet,
};
