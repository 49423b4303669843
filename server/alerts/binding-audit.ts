import { toError } from '../lib/errors.js';
import { eventHandlerUrl } from '../install/bindings.js';
import { updatePortal, type PortalRow } from '../../db/stores/portals.js';
import type { MonitorContext } from './monitor-context.js';

/** Binding audits (one `event.get` each) under way at once, whatever the number of portals. */
export const AUDIT_CONCURRENCY = 8;

/**
 * The portals as the check reads them, with the bindings of those whose audit is due read
 * with `event.get` first (`auditBindings`) — as far as those calls answer within
 * `ctx.auditWaitMs`. Every portal is audited at most once per `auditEveryMs`, at most
 * AUDIT_CONCURRENCY calls at a time (thousands of portals used to mean thousands of requests
 * at once), and the check never waits for the slowest: a portal whose REST endpoint hangs
 * (30 s timeout) or waits for its rate-limit bucket used to hold every other portal's
 * alerts that long. An audit still under way when the check goes on stores what it reads, and
 * the next check uses it.
 */
export async function withAudits(
  ctx: MonitorContext,
  listed: readonly PortalRow[],
  now: number,
): Promise<PortalRow[]> {
  const read = new Map<number, PortalRow>();
  const started: Array<Promise<void>> = [];
  for (const p of listed) {
    if (p.status !== 'installed' || p.auth_mode !== 'oauth' || !p.access_token_enc) continue;
    const last = ctx.lastAudit.get(p.id);
    if (last !== undefined && now - last < ctx.auditEveryMs) continue;
    ctx.lastAudit.set(p.id, now);
    started.push(
      ctx.audits.add(async () => {
        read.set(p.id, await auditBindings(ctx, p));
      }),
    );
  }
  if (started.length > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(started),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, ctx.auditWaitMs))),
    ]);
    clearTimeout(timer);
  }
  return listed.map((p) => read.get(p.id) ?? p);
}

/**
 * Records what Bitrix24 really has bound to our handler (`event.get`) in `events_bound`, so a
 * binding Bitrix24 dropped shows up as drift.
 */
export async function auditBindings(ctx: MonitorContext, p: PortalRow): Promise<PortalRow> {
  const { deps } = ctx;
  try {
    const rows = await deps.bitrix.call<
      Array<{ event?: string; handler?: string; offline?: number | string }>
    >(p, 'event.get');
    const handler = eventHandlerUrl(deps);
    const actual = [
      ...new Set(
        (Array.isArray(rows) ? rows : [])
          .filter((b) => Number(b.offline ?? 0) === 0 && b.handler === handler && b.event)
          .map((b) => String(b.event).toUpperCase()),
      ),
    ];
    const events_bound = JSON.stringify(actual);
    if (events_bound !== p.events_bound) await updatePortal(deps.db, p.id, { events_bound });
    return { ...p, events_bound };
  } catch (e) {
    deps.logger.warn(
      { memberId: p.member_id, err: toError(e).message },
      'binding audit (event.get) failed',
    );
    return p;
  }
}
