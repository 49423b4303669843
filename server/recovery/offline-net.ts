import { toError } from '../lib/errors.js';
import { PausedError, PermanentError } from '../lib/retry-errors.js';
import type { PortalRow } from '../../db/stores/portals.js';
import {
  claimNetDrain,
  drainablePortals,
  duePortals,
  rescheduleNetDrain,
  settleNetDrain,
  type PageMark,
} from '../../db/stores/offline-schedule.js';
import { addReport, emptyReport, type DrainReport, type OfflineContext } from './offline-batch.js';

/** A portal's net interval after a drain that found records or failed, or a notice. */
export const NET_MIN_INTERVAL_MS = 5 * 60_000;
/** The longest a portal whose drains find nothing waits for the next one. */
export const NET_MAX_INTERVAL_MS = 60 * 60_000;
/**
 * How long a drain holds its portal: a longer drain may meet another instance's drain of the
 * same portal, which is harmless (parallel `event.offline.get` calls get separate records:
 * https://apidocs.bitrix24.com/api-reference/events/event-offline-get.html).
 */
export const NET_LEASE_MS = 15 * 60_000;
/** Portals read per query; a tick reads the next page when its lanes have taken these. */
const PAGE = 50;

/** What the net needs: the drain's context and its one drain per portal. */
export interface NetContext {
  readonly ctx: OfflineContext;
  /** How many portals are drained at once. */
  readonly lanes: number;
  /** Lanes the ticks hold now: a tick whose last drains still run leaves the rest to the next. */
  readonly held: { count: number };
  drain(portal: PortalRow, opts: { retryErrors: boolean }): Promise<DrainReport>;
  /** True once the drain is stopping: the lanes take no more portals. */
  stopping(): boolean;
}

/** How a net drain ended, for the portal's next interval. */
type Outcome = 'found' | 'empty' | 'failed' | 'refused';

/**
 * The portal's next interval: the shortest after records or a failure (a lost notice is
 * likelier where records come); doubled after a drain that found nothing, up to the longest.
 * A refusal (no administrator's token, a paused portal) does not end by asking again soon.
 */
export function nextInterval(previous: number | null | undefined, outcome: Outcome): number {
  if (outcome === 'found' || outcome === 'failed') return NET_MIN_INTERVAL_MS;
  const base = Math.max(previous ?? NET_MIN_INTERVAL_MS, NET_MIN_INTERVAL_MS);
  return Math.min(base * 2, NET_MAX_INTERVAL_MS);
}

/**
 * The timer's tick: drains the portals whose net drain is due now, on the lanes earlier ticks
 * left free, each under its lease; a portal that hangs holds one lane until its REST timeout.
 * Portals that come due during the tick wait for the next one. `onRead`: every due portal was
 * taken (or reading failed); drains may still run, and a next tick may start.
 */
export async function netTick(net: NetContext, onRead?: () => void): Promise<DrainReport> {
  const { ctx } = net;
  const total = emptyReport();
  const start = ctx.now();
  const due = pages((last) => {
    const after: PageMark | undefined = last && { dueAt: last.offline_due_at ?? 0, id: last.id };
    return duePortals(ctx.db, start, after, PAGE);
  });
  const free = Math.max(1, net.lanes) - net.held.count;
  if (free <= 0) onRead?.();
  else await inLanes(net, free, due, (p) => drainLeased(net, p, true, total), onRead);
  return total;
}

/**
 * Every drainable portal, `lanes` at a time (the start after downtime), whether due or not;
 * a portal another drain holds now is left to it.
 */
export async function netDrainEvery(net: NetContext): Promise<DrainReport> {
  const { ctx } = net;
  const total = emptyReport();
  const all = pages((last) => drainablePortals(ctx.db, last?.id ?? 0, PAGE));
  await inLanes(net, Math.max(1, net.lanes), all, (p) => drainLeased(net, p, false, total));
  return total;
}

/** The portals `read` gives PAGE at a time, each page read after the last portal of the one before. */
async function* pages(
  read: (last: PortalRow | undefined) => Promise<PortalRow[]>,
): AsyncGenerator<PortalRow> {
  let last: PortalRow | undefined;
  for (;;) {
    const page = await read(last);
    yield* page;
    last = page.at(-1);
    if (!last || page.length < PAGE) return;
  }
}

/** A notice was drained: the portal's next net drain is the shortest interval away at most. */
export async function netNoticed(ctx: OfflineContext, portalId: number): Promise<void> {
  await rescheduleNetDrain(ctx.db, portalId, {
    dueAt: ctx.now() + NET_MIN_INTERVAL_MS,
    intervalMs: NET_MIN_INTERVAL_MS,
  }).catch((e: unknown) =>
    ctx.logger.warn({ portalId, err: toError(e).message }, 'offline net: schedule not written'),
  );
}

/** Claims the portal, drains it, and sets its next drain by what the drain found. */
async function drainLeased(
  net: NetContext,
  portal: PortalRow,
  dueOnly: boolean,
  total: DrainReport,
): Promise<void> {
  const { ctx } = net;
  const lease = ctx.now() + NET_LEASE_MS;
  if (!(await claimNetDrain(ctx.db, portal.id, ctx.now(), lease, dueOnly))) return;
  let outcome: Outcome;
  try {
    const report = await net.drain(portal, { retryErrors: true });
    addReport(total, report);
    outcome = report.read > 0 ? 'found' : 'empty';
  } catch (e) {
    outcome = e instanceof PermanentError || e instanceof PausedError ? 'refused' : 'failed';
    ctx.logger.warn(
      { memberId: portal.member_id, err: toError(e).message },
      'offline drain failed; the net tries again',
    );
  }
  const intervalMs = nextInterval(portal.offline_interval_ms, outcome);
  await settleNetDrain(ctx.db, portal.id, lease, {
    dueAt: ctx.now() + intervalMs,
    intervalMs,
  }).catch((e: unknown) =>
    ctx.logger.warn(
      { memberId: portal.member_id, err: toError(e).message },
      'offline net: schedule not written; the lease runs out on its own',
    ),
  );
}

/**
 * Runs `work` over `items` with at most `lanes` in flight, until the drain stops. A failure
 * to read the next items ends the walk (logged); what was taken finishes. With `onRead`, the
 * lanes count as held (NetContext.held) until each ends, and it is called when the first
 * finds nothing more to take.
 */
async function inLanes<T>(
  net: NetContext,
  lanes: number,
  items: AsyncGenerator<T>,
  work: (item: T) => Promise<void>,
  onRead?: () => void,
): Promise<void> {
  const { ctx } = net;
  const held = onRead ? net.held : { count: 0 };
  // An async generator answers one next() at a time, in order: each item goes to one lane.
  const lane = async () => {
    held.count++;
    try {
      while (!net.stopping()) {
        let next: IteratorResult<T>;
        try {
          next = await items.next();
        } catch (e) {
          ctx.logger.warn({ err: toError(e).message }, 'offline net: portals not read');
          return;
        }
        if (next.done) return;
        await work(next.value).catch((e: unknown) =>
          ctx.logger.warn({ err: toError(e).message }, 'offline net: portal not drained'),
        );
      }
    } finally {
      held.count--;
      onRead?.();
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));
}
