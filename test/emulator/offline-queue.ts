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
 * Offline events (protocol §3.3, DOCS:api-reference/events/offline-events.md): the portal
 * keeps ONE record per (event, object, connector) with the latest state, whether or not any
 * handler is reachable, until the app reads and clears it.
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
}

export const createOfflineQueue = (): OfflineQueue => ({ records: [], seq: 0, notifiedAt: 0 });

/** A `clear=0` reservation lasts up to 30 days (protocol §3.3). */
const RESERVATION_MS = 30 * 24 * 3600_000;

const messageIdOf = (event: string, data: PhpValue): string =>
  createHash('md5')
    .update(`${event}|${JSON.stringify(data)}`)
    .digest('hex');

/**
 * Records `event` for every offline binding of it, replacing an earlier record of the same
 * object. A change made by a call carrying `auth_connector` is not recorded for the binding
 * of that connector (the core's loop break). Returns true when ONOFFLINEEVENT is due.
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
    if (authConnector && b.connectorId === authConnector) continue;
    const messageId = messageIdOf(event, data);
    const q = portal.offline;
    const existing = q.records.find(
      (r) => r.event === event && r.messageId === messageId && r.connectorId === b.connectorId,
    );
    if (existing) {
      // The latest state wins; a reserved copy is released so the change is read again.
      existing.timestampX = now;
      existing.userId = userId ?? existing.userId;
      existing.processId = '';
      existing.error = false;
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

const FIELD_VALUE: Record<string, (r: OfflineRecord) => string | number> = {
  ID: (r) => r.id,
  TIMESTAMP_X: (r) => r.timestampX,
  EVENT_NAME: (r) => r.event,
  MESSAGE_ID: (r) => r.messageId,
};

/** `{ID: 5}`, `{'>ID': 5}`, `{'>=TIMESTAMP_X': '2026-…'}`, `{EVENT_NAME: 'ONCRMDEALUPDATE'}`. */
function matches(r: OfflineRecord, filter: unknown): boolean {
  if (!isRecord(filter)) return true;
  for (const [rawKey, rawValue] of Object.entries(filter)) {
    const m = /^(>=|<=|>|<|=|!)?(.+)$/.exec(rawKey.toUpperCase());
    const op = m?.[1] ?? '=';
    const field = m?.[2] ?? '';
    const get = FIELD_VALUE[field];
    if (!get) continue;
    const have = get(r);
    let want: string | number = String(rawValue);
    if (field === 'TIMESTAMP_X') want = Date.parse(want);
    else if (field === 'ID') want = Number(want);
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
              : op === '!'
                ? have !== want
                : have === want;
    if (!ok) return false;
  }
  return true;
}

function sorted(records: OfflineRecord[], order: unknown): OfflineRecord[] {
  const keys: Array<[string, number]> = isRecord(order)
    ? Object.entries(order)
        .filter(([k]) => FIELD_VALUE[k.toUpperCase()])
        .map(([k, v]) => [k.toUpperCase(), String(v).toUpperCase() === 'DESC' ? -1 : 1])
    : [];
  if (keys.length === 0) keys.push(['TIMESTAMP_X', 1]);
  keys.push(['ID', 1]);
  return [...records].sort((a, b) => {
    for (const [k, dir] of keys) {
      const x = FIELD_VALUE[k]!(a);
      const y = FIELD_VALUE[k]!(b);
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

const list = (v: unknown): string[] =>
  Array.isArray(v) ? v.map(String) : isRecord(v) ? Object.values(v).map(String) : [];

const offlineGet: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const now = portal.ctx.now();
  const clear = flag(params, 'clear', 1);
  const error = flag(params, 'error', 0);
  const connector = paramString(params, 'auth_connector');
  const rawLimit = Number(param(params, 'limit') ?? 50);
  const limit = Number.isInteger(rawLimit) && rawLimit > 0 ? Math.min(rawLimit, 1000) : 50;
  const free = portal.offline.records.filter(
    (r) =>
      (r.processId === '' || now - r.reservedAt > RESERVATION_MS) &&
      r.error === (error === 1) &&
      (connector === '' || r.connectorId === connector) &&
      matches(r, param(params, 'filter')),
  );
  const picked = sorted(free, param(params, 'order')).slice(0, limit);
  const processId = randomHex(16);
  const events = picked.map(shape);
  if (clear) {
    portal.offline.records = portal.offline.records.filter((r) => !picked.includes(r));
  } else {
    for (const r of picked) {
      r.processId = processId;
      r.reservedAt = now;
    }
  }
  return { result: { process_id: processId, events } };
};

const offlineClear: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const processId = paramString(params, 'process_id');
  if (processId === '') {
    throw new RestError(400, 'ERROR_ARGUMENT', "Argument 'process_id' is null or empty");
  }
  // The core checks message_id before id (protocol §3.3).
  const messageIds = list(param(params, 'message_id'));
  const ids = list(param(params, 'id'));
  portal.offline.records = portal.offline.records.filter((r) => {
    if (r.processId !== processId) return true;
    if (messageIds.length) return !messageIds.includes(r.messageId);
    if (ids.length) return !ids.includes(String(r.id));
    return false;
  });
  return { result: true };
};

const offlineError: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const processId = paramString(params, 'process_id');
  if (processId === '') {
    throw new RestError(400, 'ERROR_ARGUMENT', "Argument 'process_id' is null or empty");
  }
  const messageIds = list(param(params, 'message_id'));
  for (const r of portal.offline.records) {
    if (r.processId !== processId || !messageIds.includes(r.messageId)) continue;
    r.error = true;
    r.processId = '';
  }
  return { result: true };
};

const offlineList: MethodHandler = (params, call, portal) => {
  requireAdmin(call);
  const all = sorted(
    portal.offline.records.filter((r) => matches(r, param(params, 'filter'))),
    param(params, 'order'),
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

export const OFFLINE_METHODS: Readonly<Record<string, MethodHandler>> = {
  'event.offline.get': offlineGet,
  'event.offline.clear': offlineClear,
  'event.offline.error': offlineError,
  'event.offline.list': offlineList,
};
