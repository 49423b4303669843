import type { Deps } from '../deps.js';
import { entityOf } from '../intake/entity.js';
import { LIFECYCLE_EVENTS } from '../intake/deliver.js';
import { OFFLINE_NOTICE } from '../install/offline-binding.js';
import { writeIntakeBatch, type IntakeRow } from '../../db/stores/intake.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { latestCoveringReceipt } from '../../db/stores/recovery.js';
import { whileBusy } from './busy.js';
import { recoveredRow } from './recovered-row.js';

/**
 * One record of `event.offline.get`
 * (https://apidocs.bitrix24.com/api-reference/events/event-offline-get.html).
 */
export interface OfflineEventRecord {
  ID: string | number;
  TIMESTAMP_X: string;
  EVENT_NAME: string;
  EVENT_DATA: Record<string, unknown> | unknown[] | null | false;
  EVENT_ADDITIONAL?: { user_id?: string | number } | unknown[] | false;
  MESSAGE_ID: string;
}

/**
 * How records are read. `confirm`: `clear=0` reserves a batch under a process_id, then
 * `event.offline.clear` / `event.offline.error` settle it (needs the portal's
 * `rest_offline_extended` feature). `clear`: `clear=1` deletes what it returns at once.
 */
export type DrainMode = 'confirm' | 'clear';

export interface DrainReport {
  /** Records read from the portal. */
  read: number;
  /** Stored as events with source `offline`, to be processed. */
  recovered: number;
  /** Dropped: the entity was already handled after the record's change. */
  covered: number;
  /**
   * Records that could not be handled: reported with `event.offline.error` (confirm mode;
   * retried on the next timer tick), or lost in the clearing mode (the log says so).
   */
  failed: number;
}

export const emptyReport = (): DrainReport => ({ read: 0, recovered: 0, covered: 0, failed: 0 });

/** Adds `b`'s counts to `a`. */
export function addReport(a: DrainReport, b: DrainReport): void {
  a.read += b.read;
  a.recovered += b.recovered;
  a.covered += b.covered;
  a.failed += b.failed;
}

/** What the offline drain's module functions share: built once by `createOfflineDrain`. */
export interface OfflineContext extends Pick<Deps, 'db' | 'logger' | 'config' | 'bitrix'> {
  /** The injected clock, in ms. */
  now(): number;
  /** Records per `event.offline.get`. */
  limit: number;
  /** Called after new events and jobs were stored (wakes the worker). */
  onStored?: () => void;
  /** The drain in progress per portal id (one at a time: a notice during a drain joins it). */
  running: Map<number, Promise<DrainReport>>;
  /** The mode each portal was last drained in, and when that was learnt. */
  modes: Map<number, { mode: DrainMode; at: number }>;
  /** The `auth_connector` of each portal's drain under way ('' = none: no source keys). */
  connectors: Map<number, string>;
  /** Makes the portal's bindings again (a plan that lost its source keys). */
  resync(portal: PortalRow): Promise<unknown>;
}

/** What became of one batch, and which records to clear or report as errors. */
export interface BatchOutcome {
  report: DrainReport;
  /** MESSAGE_IDs stored or covered: cleared in the confirm mode. */
  done: string[];
  /** Records that cannot be handled: reported with `event.offline.error` in the confirm mode. */
  bad: Array<{ id: string; reason: string }>;
}

type Verdict =
  { kind: 'row'; row: IntakeRow } | { kind: 'covered' } | { kind: 'bad'; reason: string };

const dataOf = (r: OfflineEventRecord): Record<string, unknown> =>
  r.EVENT_DATA && typeof r.EVENT_DATA === 'object' && !Array.isArray(r.EVENT_DATA)
    ? r.EVENT_DATA
    : {};

/** Stores one batch's records that no received event covers, in the intake's own store. */
export async function storeBatch(
  ctx: OfflineContext,
  portal: PortalRow,
  records: OfflineEventRecord[],
): Promise<BatchOutcome> {
  const report = emptyReport();
  report.read = records.length;
  const done: string[] = [];
  const bad: Array<{ id: string; reason: string }> = [];
  const rows: IntakeRow[] = [];
  const rowIds: string[] = [];
  for (const r of records) {
    const v = await verdict(ctx, portal, r);
    if (v.kind === 'row') {
      rows.push(v.row);
      rowIds.push(r.MESSAGE_ID);
    } else if (v.kind === 'covered') {
      report.covered++;
      done.push(r.MESSAGE_ID);
    } else {
      bad.push({ id: r.MESSAGE_ID, reason: v.reason });
    }
  }
  report.failed = bad.length;
  if (rows.length) {
    const outcomes = await whileBusy(() => writeIntakeBatch(ctx.db, rows, ctx.now()));
    report.recovered += outcomes.filter((o) => !o.duplicate).length;
    done.push(...rowIds);
    ctx.onStored?.();
  }
  return { report, done, bad };
}

/**
 * A record becomes an event row (source `offline`), unless an event received at or after
 * its change covers it, or it is unusable (no event name, no entity id).
 */
async function verdict(
  ctx: OfflineContext,
  portal: PortalRow,
  r: OfflineEventRecord,
): Promise<Verdict> {
  const event = String(r.EVENT_NAME ?? '')
    .trim()
    .toUpperCase();
  if (!/^[A-Z0-9_]{2,64}$/.test(event)) {
    return { kind: 'bad', reason: `no usable EVENT_NAME (${JSON.stringify(r.EVENT_NAME)})` };
  }
  if (LIFECYCLE_EVENTS.has(event) || event === OFFLINE_NOTICE) return { kind: 'covered' };
  const data = dataOf(r);
  const entity = entityOf(event, data);
  if (entity.type && entity.type !== 'app' && !entity.id) {
    return { kind: 'bad', reason: `${event} record without a ${entity.type} ID` };
  }
  const changedAt = Date.parse(r.TIMESTAMP_X);
  if (entity.type && entity.id && Number.isFinite(changedAt)) {
    const seen = await latestCoveringReceipt(ctx.db, portal.id, entity.type, [entity.id]);
    if ((seen.get(entity.id) ?? -Infinity) >= changedAt) return { kind: 'covered' };
  }
  return {
    kind: 'row',
    row: recoveredRow({
      portal,
      event,
      data,
      source: 'offline',
      ts: Number.isFinite(changedAt) ? Math.floor(changedAt / 1000) : null,
      origin: { id: String(r.ID), message_id: r.MESSAGE_ID, timestamp_x: r.TIMESTAMP_X },
      changeKey: `${r.MESSAGE_ID}\n${r.TIMESTAMP_X}`,
      maxAttempts: ctx.config.worker.maxAttempts,
      now: ctx.now(),
    }),
  };
}
