import type { Deps } from '../deps.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { toError } from '../lib/errors.js';
import { evaluateRules } from '../rules/conditions.js';
import { buildTemplateContext } from '../rules/context.js';
import { readField, sameValue } from '../rules/fields.js';
import type { EventMap, Snapshot } from '../rules/model.js';
import { writeIntakeBatch, type IntakeRow } from '../../db/stores/intake.js';
import { whileBusy } from './busy.js';
import { recoveredRow } from './recovered-row.js';
import { listPortals, type PortalRow } from '../../db/stores/portals.js';
import {
  abandonGaps,
  getGap,
  insertGap,
  latestCoveringReceipt,
  runningGap,
  snapshotsOf,
  updateGap,
  type GapRow,
  type GapTrigger,
  type PortalCoverage,
} from '../../db/stores/recovery.js';
import { effectiveMap } from '../../db/stores/rules.js';
import { watchedTypes, type WatchedType } from './watched.js';

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
  /** Resolves when the sweep in progress (if any) is over. */
  idle(): Promise<void>;
  /** Stops the sweep in progress after its current page (shutdown); its record says so. */
  cancel(): Promise<void>;
}

export interface SweeperOptions {
  /** Called after reconcile events were stored (wakes the worker). */
  onStored?: () => void;
}

/** The list page Bitrix24 returns (protocol §2.4). */
const PAGE = 50;
/** At most this many pages per type and portal in one sweep (100,000 records). */
const MAX_PAGES = 2000;
/** A `running` sweep older than this is taken for one that died with its process. */
const STALE_MS = 3600_000;

/** `2026-11-27T10:00:00+00:00`: what Bitrix24 date filters take (no milliseconds). */
export function bitrixTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', '+00:00');
}

interface Listed {
  id: string;
  record: Record<string, unknown>;
  /** ms of the last change, NaN when the portal did not say. */
  modified: number;
  created: number;
}

/** One page of a type's records changed after `since`, by ID after `afterId` (fast paging). */
async function listPage(
  deps: Deps,
  portal: PortalRow,
  w: WatchedType,
  since: number,
  afterId: number,
): Promise<Listed[]> {
  const dynamic = /^dynamic:(\d+)$/.exec(w.type);
  if (dynamic) {
    // crm.item.list: camelCase fields, `{items}` (DOCS api-reference/crm/universal).
    const answer = await deps.bitrix.call<{ items?: Array<Record<string, unknown>> }>(
      portal,
      'crm.item.list',
      {
        entityTypeId: Number(dynamic[1]),
        filter: { '>=updatedTime': bitrixTime(since), '>id': afterId },
        order: { id: 'ASC' },
        select: ['*', ...w.select],
        start: -1,
      },
    );
    return (Array.isArray(answer?.items) ? answer.items : []).map((r) => ({
      id: String(r.id),
      record: r,
      modified: Date.parse(String(r.updatedTime ?? '')),
      created: Date.parse(String(r.createdTime ?? '')),
    }));
  }
  // `start=-1` skips the count; paging is by `>ID` on the last seen id (protocol §2.4).
  // DATE_MODIFY has whole seconds: `>=` the gap's first second misses nothing of it.
  const rows = await deps.bitrix.call<Array<Record<string, unknown>>>(
    portal,
    `crm.${w.type}.list`,
    {
      filter: { '>=DATE_MODIFY': bitrixTime(since), '>ID': afterId },
      order: { ID: 'ASC' },
      select: [...new Set(['ID', 'DATE_CREATE', 'DATE_MODIFY', '*', 'UF_*', ...w.select])],
      start: -1,
    },
  );
  return (Array.isArray(rows) ? rows : []).map((r) => ({
    id: String(r.ID),
    record: r,
    modified: Date.parse(String(r.DATE_MODIFY ?? '')),
    created: Date.parse(String(r.DATE_CREATE ?? '')),
  }));
}

/**
 * A page again after a passing failure (rate limit, 5xx, network): the CLI's sweep shares
 * the portal's budget with the running server, so a QUERY_LIMIT_EXCEEDED can happen.
 */
async function withRetries<T>(f: () => Promise<T>, attempts = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= attempts || !isBitrixApiError(e) || !e.retryable) throw e;
      const wait = (e.retryAfterMs ?? 0) || 1000 * 2 ** (i - 1);
      await new Promise((r) => setTimeout(r, Math.min(wait, 30_000)));
    }
  }
}

/** Whether a watched field of the record differs from the snapshot (fields never seen do not). */
function differs(
  fields: readonly string[],
  ctx: ReturnType<typeof buildTemplateContext>,
  snap: Snapshot,
) {
  return fields.some((f) => Object.hasOwn(snap, f) && !sameValue(readField(ctx, f), snap[f]));
}

/**
 * The downtime sweep (issue 8): for each portal, lists the records of the watched types
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
  const { db, logger, config } = deps;
  const now = () => deps.clock.now().getTime();
  let current: Promise<GapRow> | undefined;
  let busy = false;
  let cancelled = false;

  async function sweepType(
    portal: PortalRow,
    map: EventMap,
    w: WatchedType,
    since: number,
    gapId: number,
    cov: PortalCoverage,
  ) {
    let afterId = 0;
    for (let page = 0; page < MAX_PAGES; page++) {
      if (cancelled) throw new Error('interrupted: the app stopped');
      const listed = await withRetries(() => listPage(deps, portal, w, since, afterId));
      if (listed.length === 0) break;
      cov.listed += listed.length;
      const ids = listed.map((l) => l.id);
      const [snaps, seen] = await Promise.all([
        snapshotsOf(db, portal.id, w.type, ids),
        latestCoveringReceipt(db, portal.id, w.type, ids),
      ]);
      const rows: IntakeRow[] = [];
      const t = now();
      for (const l of listed) {
        // As for offline records: an event received at or after the change (whole seconds)
        // covers it. Erring this way never runs a rule twice for one change.
        const changedAt = Number.isFinite(l.modified) ? l.modified : since;
        if ((seen.get(l.id) ?? -Infinity) >= changedAt) continue;
        const isNew = Number.isFinite(l.created) && l.created >= since;
        const event = isNew && w.addEvent ? w.addEvent : w.updateEvent;
        if (!event) continue; // only ADD rules, and the record is older than the gap
        const snap = snaps.get(l.id);
        const info = { name: event, entityType: w.type, entityId: l.id };
        if (snap !== undefined) {
          const ctx = buildTemplateContext({ event: info, entity: l.record });
          const wanted =
            differs(w.fields, ctx, snap) ||
            evaluateRules(map, { event: info, entity: l.record, previous: snap }).some(
              (v) => v.matched,
            );
          if (!wanted) continue;
        }
        rows.push(reconcileRow(portal, event, w.type, l, gapId, t));
      }
      if (rows.length) {
        const outcomes = await whileBusy(() => writeIntakeBatch(db, rows, t));
        cov.enqueued += outcomes.filter((o) => !o.duplicate).length;
        opts.onStored?.();
      }
      afterId = Math.max(afterId, ...listed.map((l) => Number(l.id) || 0));
      if (listed.length < PAGE) break;
    }
  }

  function reconcileRow(
    portal: PortalRow,
    event: string,
    type: string,
    l: Listed,
    gapId: number,
    t: number,
  ): IntakeRow {
    const dynamic = /^dynamic:(\d+)$/.exec(type);
    const data = {
      FIELDS: dynamic ? { ID: l.id, ENTITY_TYPE_ID: dynamic[1] } : { ID: l.id },
    };
    const ts = Number.isFinite(l.modified) ? Math.floor(l.modified / 1000) : null;
    const modified = String(l.record.DATE_MODIFY ?? l.record.updatedTime ?? '');
    return recoveredRow({
      portal,
      event,
      data,
      source: 'sweep',
      ts,
      origin: { gap: gapId, modified },
      // One reconcile per record and change, however many sweeps look at it.
      changeKey: `${type}\n${l.id}\n${modified}`,
      maxAttempts: config.worker.maxAttempts,
      now: t,
    });
  }

  async function sweepPortal(portal: PortalRow, since: number, gapId: number) {
    const cov: PortalCoverage = {
      memberId: portal.member_id,
      domain: portal.domain,
      status: 'done',
      listed: 0,
      enqueued: 0,
      types: [],
    };
    const map = await effectiveMap(db, portal.member_id);
    const { types, unsupported } = watchedTypes(map);
    cov.types = types.map((w) => w.type);
    if (unsupported.length) cov.unsupported = unsupported;
    if (types.length === 0) {
      cov.status = 'skipped';
      return cov;
    }
    try {
      for (const w of types) await sweepType(portal, map, w, since, gapId, cov);
    } catch (e) {
      cov.status = 'failed';
      cov.error = toError(e).message.slice(0, 500);
      logger.warn({ memberId: portal.member_id, err: cov.error }, 'downtime sweep failed');
    }
    return cov;
  }

  const sweepable = (p: PortalRow) =>
    p.status === 'installed' &&
    ((p.auth_mode === 'oauth' && !!p.access_token_enc) ||
      (p.auth_mode === 'webhook' && !!p.webhook_url_enc));

  async function execute(gapId: number, req: SweepRequest): Promise<GapRow> {
    const portals: PortalCoverage[] = [];
    let status: GapRow['status'] = 'done';
    let error: string | undefined;
    try {
      const all = (await listPortals(db)).filter(
        (p) => req.memberId === undefined || p.member_id === req.memberId,
      );
      for (const p of all) {
        if (!sweepable(p)) {
          portals.push({
            memberId: p.member_id,
            domain: p.domain,
            status: 'skipped',
            listed: 0,
            enqueued: 0,
            types: [],
            error: `portal is ${p.status === 'installed' ? 'not connected' : p.status}`,
          });
          continue;
        }
        portals.push(await sweepPortal(p, req.since - (req.marginMs ?? 0), gapId));
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
      finishedAt: now(),
      ...(error ? { error } : {}),
    });
    logger.info(
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

  async function begin(req: SweepRequest) {
    // One sweep at a time in this process (checked before any await), and across processes
    // through the recorded `running` row.
    if (busy) throw new SweepRefusedError('a sweep is already running');
    busy = true;
    try {
      const t = now();
      if (!Number.isFinite(req.since) || req.since >= t) {
        throw new SweepRefusedError('the gap must begin in the past');
      }
      await abandonGaps(db, t - STALE_MS, t);
      const other = await runningGap(db, t - STALE_MS);
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
        now: t,
      });
      const done = execute(gapId, req).finally(() => {
        busy = false;
        current = undefined;
      });
      current = done;
      return { gapId, done };
    } catch (e) {
      if (!current) busy = false;
      throw e;
    }
  }

  return {
    begin,
    async run(req) {
      return (await begin(req)).done;
    },
    async idle() {
      await current?.catch(() => undefined);
    },
    async cancel() {
      if (!current) return;
      cancelled = true;
      await current.catch(() => undefined);
      cancelled = false;
    },
  };
}
