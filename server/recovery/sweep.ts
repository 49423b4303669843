import os from 'node:os';
import type { Deps } from '../deps.js';
import { toError } from '../lib/errors.js';
import { listPortals, type PortalRow } from '../../db/stores/portals.js';
import {
  abandonGaps,
  getGap,
  insertGap,
  runningGaps,
  updateGap,
  type GapRow,
  type GapTrigger,
  type PortalCoverage,
} from '../../db/stores/recovery.js';
import { sweepPortal, type SweepContext } from './sweep-portal.js';

export { bitrixTime } from './sweep-list.js';

/** What to sweep: entities changed from `since` on, on every portal or one. */
export interface SweepRequest {
  /** When the gap began (ms): entities modified after it are listed. */
  since: number;
  /** When it ended (ms). @default now */
  until?: number;
  /** Only this portal (member_id). */
  memberId?: string;
  trigger: GapTrigger;
  /** Who asked (`cli`, `ui:<member_id>:<user id>`), for the record. */
  requestedBy?: string;
  /**
   * List from this much before `since` (events are delivered a little after the change,
   * and the portal's clock may differ from ours). @default 0
   */
  marginMs?: number;
}

/** A sweep could not start: another one is running, or nothing matches the request. */
export class SweepRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SweepRefusedError';
  }
}

export interface Sweeper {
  /** Records the gap and sweeps it; resolves with the finished record. */
  run(req: SweepRequest): Promise<GapRow>;
  /** Records the gap and sweeps it in the background: resolves once it is recorded. */
  begin(req: SweepRequest): Promise<{ gapId: number; done: Promise<GapRow> }>;
  /** Resolves when the sweeps in progress (if any) are over. */
  idle(): Promise<void>;
  /** Stops the sweeps in progress after their current page (shutdown); their records say so. */
  cancel(): Promise<void>;
}

export interface SweeperOptions {
  /** Called after reconcile events were stored (wakes the worker). */
  onStored?: () => void;
}

/** A `running` sweep older than this is taken for one that died with its process. */
const STALE_MS = 3600_000;

/** The scope of a sweep: one portal's member_id, or ALL_PORTALS. */
const ALL_PORTALS = '*';

/** The sweeper's context: the sweep's, plus the sweeps this process runs, by scope. */
interface SweeperContext extends SweepContext {
  /** Scopes being swept or starting (set before any await, so a clashing begin is refused). */
  busy: Set<string>;
  /** The sweeps in progress. */
  current: Map<string, Promise<GapRow>>;
}

/**
 * Whether a sweep of `scope` may start beside the sweeps of `running`: sweeps of different
 * portals go side by side (one portal's long sweep does not hold up another's); a sweep of
 * every portal goes alone.
 */
const clashes = (scope: string, running: Iterable<string>): boolean => {
  for (const r of running)
    if (r === ALL_PORTALS || scope === ALL_PORTALS || r === scope) return true;
  return false;
};

/**
 * The downtime sweep: for each portal, lists the records of the watched types
 * changed since the gap began (`>=DATE_MODIFY`, ordered and paged by ID with `start=-1`,
 * through the rate-limited REST client), and stores a reconcile event (source `sweep`,
 * through the intake's store: same dedupe and per-entity ordering) for each record
 *  - that no event of ours received after its change covers already, and
 *  - that has no snapshot, or whose watched fields differ from it, or that some rule would
 *    match now (rules without `changed` / `becomes` conditions).
 * The event is the family's ADD when the record was created in the gap and a rule listens
 * to ADD, else its UPDATE. Each sweep is recorded as a gap with its coverage per portal.
 */
export function createSweeper(deps: Deps, opts: SweeperOptions = {}): Sweeper {
  const ctx: SweeperContext = {
    db: deps.db,
    logger: deps.logger,
    config: deps.config,
    bitrix: deps.bitrix,
    now: () => deps.clock.now().getTime(),
    onStored: opts.onStored,
    cancelled: false,
    busy: new Set(),
    current: new Map(),
  };
  return {
    begin: (req) => begin(ctx, req),
    async run(req) {
      return (await begin(ctx, req)).done;
    },
    async idle() {
      await Promise.all([...ctx.current.values()].map((p) => p.catch(() => undefined)));
    },
    async cancel() {
      if (ctx.current.size === 0) return;
      ctx.cancelled = true;
      await Promise.all([...ctx.current.values()].map((p) => p.catch(() => undefined)));
      ctx.cancelled = false;
    },
  };
}

/**
 * Whether a `running` sweep was run by a process of this host that is gone (a `recover sweep`
 * killed mid-way). Another host's sweep, or one recorded without its process, counts as
 * running until STALE_MS; so does this process's own (another sweeper in it may run it).
 */
function ranByGoneProcess(g: GapRow): boolean {
  if (g.sweep_host !== os.hostname() || g.sweep_pid === null || g.sweep_pid === process.pid) {
    return false;
  }
  try {
    process.kill(g.sweep_pid, 0);
    return false;
  } catch (e) {
    // EPERM: it exists, as another user's process.
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Records the gap (refused while another sweep runs) and starts sweeping it. */
async function begin(
  ctx: SweeperContext,
  req: SweepRequest,
): Promise<{ gapId: number; done: Promise<GapRow> }> {
  const { db } = ctx;
  // One sweep per portal at a time, and a sweep of every portal alone: in this process
  // (checked before any await), and across processes through the recorded `running` rows.
  const scope = req.memberId ?? ALL_PORTALS;
  if (clashes(scope, ctx.busy)) throw new SweepRefusedError('a sweep is already running');
  ctx.busy.add(scope);
  try {
    const t = ctx.now();
    if (!Number.isFinite(req.since) || req.since >= t) {
      throw new SweepRefusedError('the gap must begin in the past');
    }
    await abandonGaps(db, t - STALE_MS, t);
    let other: GapRow | undefined;
    for (const g of await runningGaps(db, t - STALE_MS)) {
      if (!clashes(scope, [g.member_id ?? ALL_PORTALS])) continue;
      if (ranByGoneProcess(g)) {
        await updateGap(db, g.id, { status: 'failed', error: 'interrupted', finishedAt: t });
      } else other ??= g;
    }
    if (other) {
      throw new SweepRefusedError(
        `a sweep is already running (#${other.id}, since ${new Date(other.sweep_started_at).toISOString()})`,
      );
    }
    const gapId = await insertGap(db, {
      trigger: req.trigger,
      started_at: req.since,
      ended_at: req.until ?? t,
      member_id: req.memberId ?? null,
      requested_by: req.requestedBy ?? null,
      sweep_host: os.hostname(),
      sweep_pid: process.pid,
      now: t,
    });
    const done = execute(ctx, gapId, req).finally(() => {
      ctx.busy.delete(scope);
      ctx.current.delete(scope);
    });
    ctx.current.set(scope, done);
    return { gapId, done };
  } catch (e) {
    if (!ctx.current.has(scope)) ctx.busy.delete(scope);
    throw e;
  }
}

const sweepable = (p: PortalRow) =>
  p.status === 'installed' &&
  ((p.auth_mode === 'oauth' && !!p.access_token_enc) ||
    (p.auth_mode === 'webhook' && !!p.webhook_url_enc));

/** Sweeps every matching portal in turn, recording the coverage after each, then the outcome. */
async function execute(ctx: SweeperContext, gapId: number, req: SweepRequest): Promise<GapRow> {
  const { db } = ctx;
  const portals: PortalCoverage[] = [];
  let status: GapRow['status'] = 'done';
  let error: string | undefined;
  try {
    const all = (await listPortals(db)).filter(
      (p) => req.memberId === undefined || p.member_id === req.memberId,
    );
    for (const p of all) {
      if (!sweepable(p)) {
        portals.push(notSwept(p));
        continue;
      }
      portals.push(await sweepPortal(ctx, p, req.since - (req.marginMs ?? 0), gapId));
      await updateGap(db, gapId, {
        portals,
        listed: portals.reduce((n, c) => n + c.listed, 0),
        enqueued: portals.reduce((n, c) => n + c.enqueued, 0),
      });
    }
    const failed = portals.filter((c) => c.status === 'failed').length;
    const swept = portals.filter((c) => c.status === 'done').length;
    if (failed) status = swept ? 'partial' : 'failed';
  } catch (e) {
    status = 'failed';
    error = toError(e).message.slice(0, 500);
  }
  const listed = portals.reduce((n, c) => n + c.listed, 0);
  const enqueued = portals.reduce((n, c) => n + c.enqueued, 0);
  await updateGap(db, gapId, {
    status,
    portals,
    listed,
    enqueued,
    finishedAt: ctx.now(),
    ...(error ? { error } : {}),
  });
  ctx.logger.info(
    {
      gap: gapId,
      trigger: req.trigger,
      since: new Date(req.since).toISOString(),
      status,
      listed,
      enqueued,
    },
    'downtime sweep finished',
  );
  return (await getGap(db, gapId))!;
}

/** The coverage of a portal the sweep cannot list: uninstalled, or without tokens. */
const notSwept = (p: PortalRow): PortalCoverage => ({
  memberId: p.member_id,
  domain: p.domain,
  status: 'skipped',
  listed: 0,
  enqueued: 0,
  types: [],
  error: `portal is ${p.status === 'installed' ? 'not connected' : p.status}`,
});
