import type { Deps } from '../deps.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { entityOf } from '../intake/entity.js';
import { LIFECYCLE_EVENTS } from '../intake/intake.js';
import { OFFLINE_CONNECTOR, OFFLINE_NOTICE } from '../install/bindings.js';
import { toError } from '../lib/errors.js';
import type { JobHandler } from '../queue/types.js';
import { writeIntakeBatch, type IntakeRow } from '../../db/stores/intake.js';
import { whileBusy } from './busy.js';
import { recoveredRow } from './recovered-row.js';
import { findPortalById, listPortals, type PortalRow } from '../../db/stores/portals.js';
import { latestCoveringReceipt } from '../../db/stores/recovery.js';

/** One record of `event.offline.get` (protocol §3.3). */
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

export interface DrainOptions {
  /** Also read the records reported as errors earlier and try them again. @default false */
  retryErrors?: boolean;
}

export interface OfflineDrain {
  /** Reads, stores and settles the portal's offline records until none are left. */
  drainPortal(portal: PortalRow, opts?: DrainOptions): Promise<DrainReport>;
  /** Every installed OAuth portal in turn, error records included (the timer's tick). */
  drainAll(): Promise<DrainReport>;
  /** The mode the portal was last drained in (feature.get `rest_offline_extended`). */
  modeOf(portalId: number): DrainMode | undefined;
  /** Drains every `intervalMs` as well as on ONOFFLINEEVENT. @default 5 min */
  start(intervalMs?: number): void;
  stop(): Promise<void>;
  /**
   * The `process_event` handler with ONOFFLINEEVENT taken out: that event carries no entity,
   * it only says records wait, so its job drains them.
   */
  wrap(processor: JobHandler): JobHandler;
}

export interface OfflineDrainOptions {
  /** Called after new events and jobs were stored (wakes the worker). */
  onStored?: () => void;
  /** Records per `event.offline.get`. @default 50 */
  batchSize?: number;
}

/** How many `event.offline.get` rounds one drain makes at most (then the next tick goes on). */
const MAX_ROUNDS = 200;
/** How long a portal's answer to feature.get is trusted. */
const MODE_TTL_MS = 3600_000;
export const EXTENDED_FEATURE = 'rest_offline_extended';

const dataOf = (r: OfflineEventRecord): Record<string, unknown> =>
  r.EVENT_DATA && typeof r.EVENT_DATA === 'object' && !Array.isArray(r.EVENT_DATA)
    ? r.EVENT_DATA
    : {};

const emptyReport = (): DrainReport => ({ read: 0, recovered: 0, covered: 0, failed: 0 });
const add = (a: DrainReport, b: DrainReport) => {
  a.read += b.read;
  a.recovered += b.recovered;
  a.covered += b.covered;
  a.failed += b.failed;
};

/** `clear=0` refused because the plan lacks the extended mode (DOCS event-offline-get.md). */
const noExtendedMode = (e: unknown) =>
  isBitrixApiError(e) &&
  !e.retryable &&
  (e.bitrixCode === 'WRONG_LICENSE' || /WRONG_LICENSE/.test(e.description)) &&
  !/auth_connector/i.test(e.description);

type Verdict =
  { kind: 'row'; row: IntakeRow } | { kind: 'covered' } | { kind: 'bad'; reason: string };

/**
 * The offline safety net (issue 8): Bitrix24 never re-sends a lost delivery, but it keeps one
 * offline record per (event, object) for our offline bindings. Where the portal has the
 * extended mode (feature.get `rest_offline_extended`) we read in the confirm mode (`clear=0`
 * reserves them under a process_id), store each one that is not covered as an event with
 * source `offline` and a `process_event` job — in the intake's own store, so dedupe and
 * ordering per entity are the same — and only then clear them; a record we cannot handle
 * (no entity id, or the store failed) is reported with `event.offline.error` and read again
 * (`error=1`) on the next timer tick. Elsewhere the clearing mode (`clear=1`) is all there
 * is: records are gone once read, so a failure there is logged and left to the downtime
 * sweep. A crash between storing and clearing leaves the reservation to expire; the dedupe
 * key (MESSAGE_ID and TIMESTAMP_X) keeps a re-read record from being stored twice.
 */
export function createOfflineDrain(deps: Deps, opts: OfflineDrainOptions = {}): OfflineDrain {
  const { db, logger, config } = deps;
  const limit = opts.batchSize ?? 50;
  const now = () => deps.clock.now().getTime();
  const running = new Map<number, Promise<DrainReport>>();
  const modes = new Map<number, { mode: DrainMode; at: number }>();
  let timer: NodeJS.Timeout | undefined;
  let tick: Promise<unknown> | undefined;

  async function modeFor(portal: PortalRow): Promise<DrainMode> {
    const known = modes.get(portal.id);
    if (known && now() - known.at < MODE_TTL_MS) return known.mode;
    let mode: DrainMode = 'confirm';
    try {
      const answer = await deps.bitrix.call<{ value?: unknown }>(portal, 'feature.get', {
        CODE: EXTENDED_FEATURE,
      });
      const value = String(answer?.value ?? '');
      // On-premise portals without a feature check answer `<lang>_selfhosted`: every plan
      // feature is there; a refusal of clear=0 would still switch to the clearing mode.
      mode = value === 'Y' || /_selfhosted$/i.test(value) ? 'confirm' : 'clear';
    } catch (e) {
      if (!isBitrixApiError(e) || e.retryable) throw e;
      // An old core without feature.get: try the confirm mode, fall back if it is refused.
    }
    modes.set(portal.id, { mode, at: now() });
    return mode;
  }

  async function verdict(portal: PortalRow, r: OfflineEventRecord): Promise<Verdict> {
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
      const seen = await latestCoveringReceipt(db, portal.id, entity.type, [entity.id]);
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
        maxAttempts: config.worker.maxAttempts,
        now: now(),
      }),
    };
  }

  /** Reports records of a reserved batch as errors: released, and read again with error=1. */
  async function reportErrors(portal: PortalRow, processId: string, messageIds: string[]) {
    if (messageIds.length === 0) return;
    await deps.bitrix.call(portal, 'event.offline.error', {
      process_id: processId,
      message_id: messageIds,
      auth_connector: OFFLINE_CONNECTOR,
    });
  }

  /** Stores one batch; returns what happened to it and which records to clear or report. */
  async function handleBatch(portal: PortalRow, records: OfflineEventRecord[]) {
    const report = emptyReport();
    report.read = records.length;
    const done: string[] = [];
    const bad: Array<{ id: string; reason: string }> = [];
    const rows: IntakeRow[] = [];
    const rowIds: string[] = [];
    for (const r of records) {
      const v = await verdict(portal, r);
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
      const outcomes = await whileBusy(() => writeIntakeBatch(db, rows, now()));
      report.recovered += outcomes.filter((o) => !o.duplicate).length;
      done.push(...rowIds);
      opts.onStored?.();
    }
    return { report, done, bad };
  }

  async function pass(
    portal: PortalRow,
    mode: DrainMode,
    errors: boolean,
  ): Promise<DrainReport & { mode: DrainMode }> {
    const total = emptyReport();
    let lastId = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const params: Record<string, unknown> = {
        clear: mode === 'confirm' ? 0 : 1,
        limit,
        auth_connector: OFFLINE_CONNECTOR,
      };
      if (errors) {
        // Records reported again in this pass stay errors: page past them by ID.
        Object.assign(params, { error: 1, filter: { '>ID': lastId }, order: { ID: 'ASC' } });
      }
      let answer: { process_id?: string | null; events?: OfflineEventRecord[] };
      try {
        answer = await deps.bitrix.call(portal, 'event.offline.get', params);
      } catch (e) {
        if (mode === 'confirm' && noExtendedMode(e)) {
          logger.info(
            { memberId: portal.member_id },
            'offline events: confirm mode refused, using the clearing mode',
          );
          modes.set(portal.id, { mode: 'clear', at: now() });
          // Error records exist only in the confirm mode.
          if (!errors) add(total, await pass(portal, 'clear', false));
          return { ...total, mode: 'clear' };
        }
        throw e;
      }
      const records = Array.isArray(answer?.events) ? answer.events : [];
      if (records.length === 0) break;
      lastId = Math.max(lastId, ...records.map((r) => Number(r.ID) || 0));
      const processId = answer.process_id ? String(answer.process_id) : '';
      if (mode === 'confirm' && !processId) {
        throw new Error('event.offline.get answered records without a process_id in confirm mode');
      }
      let batch;
      try {
        batch = await handleBatch(portal, records);
      } catch (e) {
        // Nothing of this batch is settled: report it all rather than leave it reserved.
        if (mode === 'confirm') {
          await reportErrors(
            portal,
            processId,
            records.map((r) => r.MESSAGE_ID),
          ).catch((err: unknown) =>
            logger.warn(
              { memberId: portal.member_id, err: toError(err).message },
              'event.offline.error failed; the reservation expires on its own',
            ),
          );
        } else {
          logger.error(
            { memberId: portal.member_id, records: records.length, err: toError(e).message },
            'offline records read in the clearing mode could not be stored; a downtime sweep can find their changes',
          );
        }
        throw e;
      }
      add(total, batch.report);
      if (batch.bad.length) {
        logger.warn(
          {
            memberId: portal.member_id,
            mode,
            records: batch.bad.map((b) => `${b.id}: ${b.reason}`).slice(0, 10),
          },
          mode === 'confirm'
            ? 'offline records cannot be handled; reported with event.offline.error'
            : 'offline records cannot be handled and are gone (clearing mode)',
        );
      }
      if (mode === 'confirm') {
        await reportErrors(
          portal,
          processId,
          batch.bad.map((b) => b.id),
        );
        // Never an empty list: that would clear the whole batch.
        if (batch.done.length) {
          await deps.bitrix.call(portal, 'event.offline.clear', {
            process_id: processId,
            message_id: batch.done,
            auth_connector: OFFLINE_CONNECTOR,
          });
        }
      }
      if (records.length < limit) break;
    }
    return { ...total, mode };
  }

  async function drainOnce(portal: PortalRow, o: DrainOptions): Promise<DrainReport> {
    const mode = await modeFor(portal);
    const first = await pass(portal, mode, false);
    const report: DrainReport = emptyReport();
    add(report, first);
    // Error records exist only in the confirm mode.
    if (o.retryErrors && modes.get(portal.id)?.mode === 'confirm') {
      add(report, await pass(portal, 'confirm', true));
    }
    if (report.read > 0) {
      logger.info(
        { memberId: portal.member_id, mode: modes.get(portal.id)?.mode, ...report },
        'offline events drained',
      );
    }
    return report;
  }

  function drainPortal(portal: PortalRow, o: DrainOptions = {}): Promise<DrainReport> {
    // One drain per portal at a time: a notice during a drain joins it.
    const busy = running.get(portal.id);
    if (busy) return busy;
    const p = drainOnce(portal, o).finally(() => running.delete(portal.id));
    running.set(portal.id, p);
    return p;
  }

  async function drainAll(): Promise<DrainReport> {
    const total = emptyReport();
    if (!config.b24.offlineEvents) return total;
    for (const p of await listPortals(db)) {
      if (p.status !== 'installed' || p.auth_mode !== 'oauth' || !p.access_token_enc) continue;
      try {
        add(total, await drainPortal(p, { retryErrors: true }));
      } catch (e) {
        logger.warn(
          { memberId: p.member_id, err: toError(e).message },
          'offline drain failed; the next tick tries again',
        );
      }
    }
    return total;
  }

  return {
    drainPortal,
    drainAll,
    modeOf: (portalId) => modes.get(portalId)?.mode,
    start(intervalMs = 5 * 60_000) {
      if (timer) return;
      timer = setInterval(() => {
        if (tick) return;
        tick = drainAll().finally(() => {
          tick = undefined;
        });
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await tick;
      await Promise.allSettled([...running.values()]);
    },
    wrap(processor) {
      return async (ctx) => {
        if (ctx.event?.event !== OFFLINE_NOTICE) return processor(ctx);
        const portal =
          ctx.event.portal_id === null ? undefined : await findPortalById(db, ctx.event.portal_id);
        if (!portal || portal.status !== 'installed' || portal.auth_mode !== 'oauth') {
          return { eventStatus: 'skipped', note: 'portal is not installed' };
        }
        try {
          const r = await drainPortal(portal);
          return {
            eventStatus: 'processed',
            note:
              `offline drain: ${r.read} read, ${r.recovered} recovered, ${r.covered} covered` +
              (r.failed ? `, ${r.failed} failed` : ''),
          };
        } catch (e) {
          // Refused (no admin token, no offline binding): nothing to drain, nothing to retry.
          if (isBitrixApiError(e) && !e.retryable) {
            return { eventStatus: 'skipped', note: `offline drain refused: ${e.message}` };
          }
          throw e;
        }
      };
    },
  };
}
