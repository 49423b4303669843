import type { Deps } from '../deps.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { syncBindings } from '../install/bindings.js';
import {
  featureOn,
  noSourceKeys,
  OFFLINE_NOTICE,
  offlineConnectorOf,
} from '../install/offline-binding.js';
import { toError } from '../lib/errors.js';
import type { JobHandler } from '../queue/types.js';
import {
  heldBatches,
  holdBatch,
  releaseBatch,
  type HeldBatch,
} from '../../db/stores/offline-reservations.js';
import { findPortalById, type PortalRow } from '../../db/stores/portals.js';
import {
  addReport,
  emptyReport,
  storeBatch,
  type DrainMode,
  type DrainReport,
  type OfflineContext,
  type OfflineEventRecord,
} from './offline-batch.js';
import { netDrainEvery, netNoticed, netTick, type NetContext } from './offline-net.js';

export type { DrainMode, DrainReport, OfflineEventRecord } from './offline-batch.js';

export interface DrainOptions {
  /** Also read the records reported as errors earlier and try them again. @default false */
  retryErrors?: boolean;
}

export interface OfflineDrain {
  /** Reads, stores and settles the portal's offline records until none are left. */
  drainPortal(portal: PortalRow, opts?: DrainOptions): Promise<DrainReport>;
  /**
   * Every installed OAuth portal, due or not, `lanes` at a time, error records included (the
   * start after downtime).
   */
  drainAll(): Promise<DrainReport>;
  /**
   * The timer's tick: the portals whose net drain is due (server/recovery/offline-net.ts),
   * `lanes` at a time, error records included.
   */
  tick(): Promise<DrainReport>;
  /** The mode the portal was last drained in (feature.get `rest_offline_extended`). */
  modeOf(portalId: number): DrainMode | undefined;
  /**
   * Ticks every `intervalMs` (a tick still reading the due portals then is not joined by a
   * second one; one whose last drains still run is), as well as draining on ONOFFLINEEVENT.
   * @default 1 min
   */
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
  /** Portals a tick (or the walk after downtime) drains at once. @default 8 */
  lanes?: number;
}

/** How many `event.offline.get` rounds one drain makes at most (then the next drain goes on). */
const MAX_ROUNDS = 200;
/**
 * How long a portal's answer to feature.get is trusted. An idle portal is drained about
 * hourly, and asking at each drain cost a third of its calls; a plan that loses the extended
 * mode shows at once anyway (clear=0 refused: the clearing mode from then on), and one that
 * gains it is read in the clearing mode until the next day.
 */
const MODE_TTL_MS = 24 * 3600_000;
export const EXTENDED_FEATURE = 'rest_offline_extended';

/**
 * `clear=0` refused because the plan lacks the extended mode
 * (https://apidocs.bitrix24.com/api-reference/events/event-offline-get.html).
 */
const noExtendedMode = (e: unknown) =>
  isBitrixApiError(e) &&
  !e.retryable &&
  (e.bitrixCode === 'WRONG_LICENSE' || /WRONG_LICENSE/.test(e.description)) &&
  !/auth_connector/i.test(e.description);

/**
 * The offline safety net: Bitrix24 never re-sends a lost delivery, but it keeps one
 * offline record per (event, object) for our offline bindings. Where the portal has the
 * extended mode (feature.get `rest_offline_extended`) we read in the confirm mode (`clear=0`
 * reserves them under a process_id), store each one that is not covered as an event with
 * source `offline` and a `process_event` job — in the intake's own store, so dedupe and
 * ordering per entity are the same — and only then clear them; a record we cannot handle
 * (no entity id, or the store failed) is reported with `event.offline.error` and read again
 * (`error=1`) at the portal's next net drain. Elsewhere the clearing mode (`clear=1`) is all there
 * is: records are gone once read, so a failure there is logged and left to the downtime
 * sweep. A reserved batch is kept in `offline_reservations` until it is settled: Bitrix24
 * never releases a reservation itself, so one a crash or a failed report left is read again
 * by its process_id at the portal's next drain; the dedupe key (MESSAGE_ID and TIMESTAMP_X)
 * keeps a re-read record from being stored twice.
 */
export function createOfflineDrain(deps: Deps, opts: OfflineDrainOptions = {}): OfflineDrain {
  const ctx: OfflineContext = {
    db: deps.db,
    logger: deps.logger,
    config: deps.config,
    bitrix: deps.bitrix,
    now: () => deps.clock.now().getTime(),
    limit: opts.batchSize ?? 50,
    onStored: opts.onStored,
    running: new Map(),
    modes: new Map(),
    connectors: new Map(),
    resync: (portal) => syncBindings(deps, portal),
  };
  let timer: NodeJS.Timeout | undefined;
  let reading = false;
  const ticks = new Set<Promise<unknown>>();
  let stopping = false;
  const net: NetContext = {
    ctx,
    lanes: opts.lanes ?? 8,
    held: { count: 0 },
    drain: (portal, o) => drainPortal(ctx, portal, o),
    stopping: () => stopping,
  };
  const enabled = () => ctx.config.b24.offlineEvents;

  return {
    drainPortal: (portal, o) => drainPortal(ctx, portal, o),
    drainAll: async () => (enabled() ? netDrainEvery(net) : emptyReport()),
    tick: async () => (enabled() ? netTick(net) : emptyReport()),
    modeOf: (portalId) => ctx.modes.get(portalId)?.mode,
    start(intervalMs = 60_000) {
      if (timer) return;
      timer = setInterval(() => {
        // A tick still reading the due portals is left to finish; one whose last drains
        // still run (a portal that hangs) is not waited for: this one takes the free lanes.
        if (reading || !enabled()) return;
        reading = true;
        let read = false;
        const done = () => {
          if (read) return;
          read = true;
          reading = false;
        };
        const t: Promise<unknown> = netTick(net, done).finally(() => {
          done();
          ticks.delete(t);
        });
        ticks.add(t);
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      // A tick takes no more portals; the drains under way finish.
      stopping = true;
      await Promise.allSettled([...ticks]);
      await Promise.allSettled([...ctx.running.values()]);
    },
    wrap: (processor) => drainOnNotice(ctx, processor),
  };
}

/** The portal's drain; a second call while one runs joins it. */
function drainPortal(
  ctx: OfflineContext,
  portal: PortalRow,
  o: DrainOptions = {},
): Promise<DrainReport> {
  // One drain per portal at a time: a notice during a drain joins it.
  const busy = ctx.running.get(portal.id);
  if (busy) return busy;
  const p = drainOnce(ctx, portal, o).finally(() => ctx.running.delete(portal.id));
  ctx.running.set(portal.id, p);
  return p;
}

/**
 * The `process_event` handler with ONOFFLINEEVENT taken out: that event carries no entity,
 * it only says records wait, so its job drains them.
 */
function drainOnNotice(ctx: OfflineContext, processor: JobHandler): JobHandler {
  return async (job) => {
    if (job.event?.event !== OFFLINE_NOTICE) return processor(job);
    const portal =
      job.event.portal_id === null ? undefined : await findPortalById(ctx.db, job.event.portal_id);
    if (!portal || portal.status !== 'installed' || portal.auth_mode !== 'oauth') {
      return { eventStatus: 'skipped', note: 'portal is not installed' };
    }
    try {
      const r = await drainPortal(ctx, portal).finally(() => netNoticed(ctx, portal.id));
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
}

/** One drain: the new records, then (on request, confirm mode only) the error records. */
async function drainOnce(
  ctx: OfflineContext,
  portal: PortalRow,
  o: DrainOptions,
): Promise<DrainReport> {
  ctx.connectors.set(portal.id, await offlineConnectorOf(ctx.db, portal.member_id));
  try {
    return await drainPasses(ctx, portal, o);
  } catch (e) {
    if (!isBitrixApiError(e) || !noSourceKeys(e)) throw e;
    // Bound while the plan had source keys, which it has no more: the queue of our connector
    // cannot be read. Bound again without one, the next drain reads the new queue.
    ctx.logger.warn(
      { memberId: portal.member_id },
      "offline events: the portal's plan no longer allows auth_connector; binding them again without it",
    );
    await ctx.resync(portal);
    return emptyReport();
  } finally {
    ctx.connectors.delete(portal.id);
  }
}

async function drainPasses(
  ctx: OfflineContext,
  portal: PortalRow,
  o: DrainOptions,
): Promise<DrainReport> {
  const mode = await modeFor(ctx, portal);
  const first = await pass(ctx, portal, mode, false);
  const report: DrainReport = emptyReport();
  addReport(report, first);
  // Error records exist only in the confirm mode.
  if (o.retryErrors && ctx.modes.get(portal.id)?.mode === 'confirm') {
    addReport(report, await pass(ctx, portal, 'confirm', true));
  }
  if (report.read > 0) {
    ctx.logger.info(
      { memberId: portal.member_id, mode: ctx.modes.get(portal.id)?.mode, ...report },
      'offline events drained',
    );
  }
  return report;
}

/** The mode to read the portal in, from feature.get (trusted for a day). */
async function modeFor(ctx: OfflineContext, portal: PortalRow): Promise<DrainMode> {
  const known = ctx.modes.get(portal.id);
  if (known && ctx.now() - known.at < MODE_TTL_MS) return known.mode;
  let mode: DrainMode = 'confirm';
  try {
    const answer = await ctx.bitrix.call<{ value?: unknown }>(portal, 'feature.get', {
      CODE: EXTENDED_FEATURE,
    });
    // On-premise portals without a feature check answer `<lang>_selfhosted`: every plan
    // feature is there; a refusal of clear=0 would still switch to the clearing mode.
    mode = featureOn(answer?.value) ? 'confirm' : 'clear';
  } catch (e) {
    if (!isBitrixApiError(e) || e.retryable) throw e;
    // An old core without feature.get: try the confirm mode, fall back if it is refused.
  }
  ctx.modes.set(portal.id, { mode, at: ctx.now() });
  return mode;
}

/**
 * Reads batches until the queue is empty (or MAX_ROUNDS), storing and settling each. A
 * refused confirm mode switches the portal to the clearing mode for the rest of the pass.
 */
async function pass(
  ctx: OfflineContext,
  portal: PortalRow,
  mode: DrainMode,
  errors: boolean,
): Promise<DrainReport & { mode: DrainMode }> {
  const total = emptyReport();
  // Batches reserved before and never settled (a crash, a refused report, error records that
  // failed again): Bitrix24 keeps them reserved for good, readable by their process_id only.
  // In the clearing mode every held batch is read once more, and deleted with the read.
  for (const held of await heldBatches(ctx.db, portal.id)) {
    if (mode === 'confirm' ? held.error === errors : !errors) {
      addReport(total, await readHeld(ctx, portal, held));
    }
  }
  let lastId = 0;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const params: Record<string, unknown> = {
      clear: mode === 'confirm' ? 0 : 1,
      limit: ctx.limit,
      ...sourceKey(ctx, portal),
    };
    if (errors) {
      // Records reported again in this pass stay errors: page past them by ID.
      Object.assign(params, { error: 1, filter: { '>ID': lastId }, order: { ID: 'ASC' } });
    }
    let answer: { process_id?: string | null; events?: OfflineEventRecord[] };
    try {
      answer = await ctx.bitrix.call(portal, 'event.offline.get', params);
    } catch (e) {
      if (mode === 'confirm' && noExtendedMode(e)) {
        ctx.logger.info(
          { memberId: portal.member_id },
          'offline events: confirm mode refused, using the clearing mode',
        );
        ctx.modes.set(portal.id, { mode: 'clear', at: ctx.now() });
        // Error records exist only in the confirm mode.
        if (!errors) addReport(total, await pass(ctx, portal, 'clear', false));
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
    addReport(total, await handleBatch(ctx, portal, mode, processId, records, errors));
    if (records.length < ctx.limit) break;
  }
  return { ...total, mode };
}

/**
 * A held batch read again by its process_id and settled; released when the portal has none
 * of it. In the clearing mode (the portal's plan lost the extended mode, or a `clear=0` read
 * is refused now) it is read with `clear=1`, which deletes the whole batch with the read
 * (CORE rest lib/api/event.php: `clearEvents` with the process_id; only `clear=0` needs the
 * extended mode): stored if it can be, gone either way.
 */
async function readHeld(
  ctx: OfflineContext,
  portal: PortalRow,
  held: HeldBatch,
): Promise<DrainReport> {
  const mode = ctx.modes.get(portal.id)?.mode ?? 'confirm';
  const read = (clear: 0 | 1) =>
    ctx.bitrix.call<{ events?: OfflineEventRecord[] }>(portal, 'event.offline.get', {
      clear,
      process_id: held.processId,
      error: held.error ? 1 : 0,
      limit: ctx.limit,
      ...sourceKey(ctx, portal),
    });
  let answer: { events?: OfflineEventRecord[] };
  let clearing = mode === 'clear';
  try {
    answer = await read(clearing ? 1 : 0);
  } catch (e) {
    if (clearing || !noExtendedMode(e)) throw e;
    ctx.modes.set(portal.id, { mode: 'clear', at: ctx.now() });
    clearing = true;
    answer = await read(1);
  }
  const records = Array.isArray(answer?.events) ? answer.events : [];
  if (records.length === 0 || clearing) await releaseBatch(ctx.db, portal.id, held.processId);
  if (records.length === 0) return emptyReport();
  ctx.logger.warn(
    { memberId: portal.member_id, records: records.length, errors: held.error },
    'offline records reserved by an earlier drain and never settled: read again by their process_id',
  );
  return handleBatch(
    ctx,
    portal,
    clearing ? 'clear' : 'confirm',
    held.processId,
    records,
    held.error,
  );
}

/**
 * Stores a batch, then settles it in the confirm mode: errors reported, the rest cleared.
 * If storing fails, nothing of the batch is settled: it is all reported (confirm mode) or
 * logged as lost (clearing mode), and the failure goes up. A confirm-mode batch is held
 * (offline_reservations) from before it is stored until it is settled: a reservation is never
 * released by Bitrix24 itself, so a batch left unsettled is read again by its process_id.
 * `errors`: a batch of error records, which `event.offline.error` leaves reserved (it marks
 * and releases records not yet errors only, CORE rest lib/eventoffline.php `markError`):
 * one that fails again stays held, and its unusable records are cleared.
 */
async function handleBatch(
  ctx: OfflineContext,
  portal: PortalRow,
  mode: DrainMode,
  processId: string,
  records: OfflineEventRecord[],
  errors: boolean,
): Promise<DrainReport> {
  const { logger } = ctx;
  if (mode === 'confirm') {
    await holdBatch(ctx.db, portal.id, { processId, error: errors }, ctx.now());
  }
  let batch;
  try {
    batch = await storeBatch(ctx, portal, records);
  } catch (e) {
    // Nothing of this batch is settled: report it all rather than leave it reserved; error
    // records cannot be reported again, so they stay held for the next drain.
    if (mode === 'confirm' && !errors) {
      await reportErrors(
        ctx,
        portal,
        processId,
        records.map((r) => r.MESSAGE_ID),
      )
        .then(() => releaseBatch(ctx.db, portal.id, processId))
        .catch((err: unknown) =>
          logger.warn(
            { memberId: portal.member_id, err: toError(err).message },
            'event.offline.error failed; the batch is read again by its process_id at the next drain',
          ),
        );
    } else if (mode === 'confirm') {
      logger.warn(
        { memberId: portal.member_id, records: records.length, err: toError(e).message },
        'offline error records could not be stored again; read again by their process_id at the next drain',
      );
    } else {
      logger.error(
        { memberId: portal.member_id, records: records.length, err: toError(e).message },
        'offline records read in the clearing mode could not be stored; a downtime sweep can find their changes',
      );
    }
    throw e;
  }
  if (batch.bad.length) {
    logger.warn(
      {
        memberId: portal.member_id,
        mode,
        records: batch.bad.map((b) => `${b.id}: ${b.reason}`).slice(0, 10),
      },
      mode === 'clear'
        ? 'offline records cannot be handled and are gone (clearing mode)'
        : errors
          ? 'offline error records still cannot be handled; cleared (reported once already)'
          : 'offline records cannot be handled; reported with event.offline.error',
    );
  }
  if (mode === 'confirm') {
    // Error records reported again would stay reserved for good: unusable ones are cleared.
    const cleared = errors ? [...batch.done, ...batch.bad.map((b) => b.id)] : batch.done;
    if (!errors) {
      await reportErrors(
        ctx,
        portal,
        processId,
        batch.bad.map((b) => b.id),
      );
    }
    // Never an empty list: that would clear the whole batch.
    if (cleared.length) {
      await ctx.bitrix.call(portal, 'event.offline.clear', {
        process_id: processId,
        message_id: cleared,
        ...sourceKey(ctx, portal),
      });
    }
    await releaseBatch(ctx.db, portal.id, processId);
  }
  return batch.report;
}

/** The `auth_connector` the portal's offline bindings carry, if any. */
function sourceKey(ctx: OfflineContext, portal: PortalRow): { auth_connector?: string } {
  const connector = ctx.connectors.get(portal.id);
  return connector ? { auth_connector: connector } : {};
}

/** Reports records of a reserved batch as errors: released, and read again with error=1. */
async function reportErrors(
  ctx: OfflineContext,
  portal: PortalRow,
  processId: string,
  messageIds: string[],
): Promise<void> {
  if (messageIds.length === 0) return;
  await ctx.bitrix.call(portal, 'event.offline.error', {
    process_id: processId,
    message_id: messageIds,
    ...sourceKey(ctx, portal),
  });
}
