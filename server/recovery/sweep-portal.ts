import type { Deps } from '../deps.js';
import { toError } from '../lib/errors.js';
import { evaluateRules } from '../rules/conditions.js';
import { buildTemplateContext } from '../rules/context.js';
import { readField, sameValue } from '../rules/fields.js';
import type { EventMap, Snapshot } from '../rules/model.js';
import { writeIntakeBatch, type IntakeRow } from '../../db/stores/intake.js';
import type { PortalRow } from '../../db/stores/portals.js';
import {
  latestCoveringReceipt,
  snapshotsOf,
  type PortalCoverage,
} from '../../db/stores/recovery.js';
import { effectiveMap } from '../rules/map-store.js';
import { whileBusy } from './busy.js';
import { recoveredRow } from './recovered-row.js';
import { listPage, PAGE, withRetries, type Listed } from './sweep-list.js';
import { watchedTypes, type WatchedType } from './watched.js';

/** At most this many pages per type and portal in one sweep (100,000 records). */
const MAX_PAGES = 2000;

/** What the sweep's module functions share: built once by `createSweeper`. */
export interface SweepContext extends Pick<Deps, 'db' | 'logger' | 'config' | 'bitrix'> {
  /** The injected clock, in ms. */
  now(): number;
  /** Called after reconcile events were stored (wakes the worker). */
  onStored?: () => void;
  /** Set by `cancel()`: the sweep in progress stops before its next page. */
  cancelled: boolean;
}

/**
 * Sweeps one portal's watched types from `since` on; a failure marks the portal's coverage
 * `failed` (and is logged) rather than ending the sweep of the other portals.
 */
export async function sweepPortal(
  ctx: SweepContext,
  portal: PortalRow,
  since: number,
  gapId: number,
): Promise<PortalCoverage> {
  const cov: PortalCoverage = {
    memberId: portal.member_id,
    domain: portal.domain,
    status: 'done',
    listed: 0,
    enqueued: 0,
    types: [],
  };
  const map = await effectiveMap(ctx.db, portal.member_id);
  const { types, unsupported } = watchedTypes(map);
  cov.types = types.map((w) => w.type);
  if (unsupported.length) cov.unsupported = unsupported;
  if (types.length === 0) {
    cov.status = 'skipped';
    return cov;
  }
  try {
    for (const w of types) await sweepType(ctx, portal, map, w, since, gapId, cov);
  } catch (e) {
    cov.status = 'failed';
    cov.error = toError(e).message.slice(0, 500);
    ctx.logger.warn({ memberId: portal.member_id, err: cov.error }, 'downtime sweep failed');
  }
  return cov;
}

/** Lists one type page by page and stores a reconcile event for each record that needs one. */
async function sweepType(
  ctx: SweepContext,
  portal: PortalRow,
  map: EventMap,
  w: WatchedType,
  since: number,
  gapId: number,
  cov: PortalCoverage,
): Promise<void> {
  let afterId = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    if (ctx.cancelled) throw new Error('interrupted: the app stopped');
    const listed = await withRetries(() => listPage(ctx, portal, w, since, afterId));
    if (listed.length === 0) break;
    cov.listed += listed.length;
    const ids = listed.map((l) => l.id);
    const [snaps, seen] = await Promise.all([
      snapshotsOf(ctx.db, portal.id, w.type, ids),
      latestCoveringReceipt(ctx.db, portal.id, w.type, ids),
    ]);
    const rows: IntakeRow[] = [];
    const t = ctx.now();
    for (const l of listed) {
      const event = reconcileEvent(map, w, l, since, seen.get(l.id), snaps.get(l.id));
      if (event) rows.push(reconcileRow(ctx, portal, event, w.type, l, gapId, t));
    }
    if (rows.length) {
      const outcomes = await whileBusy(() => writeIntakeBatch(ctx.db, rows, t));
      cov.enqueued += outcomes.filter((o) => !o.duplicate).length;
      ctx.onStored?.();
    }
    afterId = Math.max(afterId, ...listed.map((l) => Number(l.id) || 0));
    if (listed.length < PAGE) break;
  }
}

/**
 * The event a listed record is reconciled with, or undefined when it needs none: an event
 * received after its change covers it, no rule listens to it, or it matches its snapshot
 * and no rule would match it now.
 */
function reconcileEvent(
  map: EventMap,
  w: WatchedType,
  l: Listed,
  since: number,
  seenAt: number | undefined,
  snap: Snapshot | undefined,
): string | undefined {
  // As for offline records: an event received at or after the change (whole seconds)
  // covers it. Erring this way never runs a rule twice for one change.
  const changedAt = Number.isFinite(l.modified) ? l.modified : since;
  if ((seenAt ?? -Infinity) >= changedAt) return undefined;
  const isNew = Number.isFinite(l.created) && l.created >= since;
  const event = isNew && w.addEvent ? w.addEvent : w.updateEvent;
  if (!event) return undefined; // only ADD rules, and the record is older than the gap
  if (snap !== undefined) {
    const info = { name: event, entityType: w.type, entityId: l.id };
    const tpl = buildTemplateContext({ event: info, entity: l.record });
    const wanted =
      differs(w.fields, tpl, snap) ||
      evaluateRules(map, { event: info, entity: l.record, previous: snap }).some((v) => v.matched);
    if (!wanted) return undefined;
  }
  return event;
}

/** Whether a watched field of the record differs from the snapshot (fields never seen do not). */
function differs(
  fields: readonly string[],
  tpl: ReturnType<typeof buildTemplateContext>,
  snap: Snapshot,
) {
  return fields.some((f) => Object.hasOwn(snap, f) && !sameValue(readField(tpl, f), snap[f]));
}

/** A reconcile event (source `sweep`) for a listed record, through the intake's store. */
function reconcileRow(
  ctx: SweepContext,
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
    maxAttempts: ctx.config.worker.maxAttempts,
    now: t,
  });
}
