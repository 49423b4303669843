import { toError } from '../lib/errors.js';
import { eventHandlerUrl } from '../install/bindings.js';
import { updatePortal, type PortalRow } from '../../db/stores/portals.js';
import type { MonitorContext } from './monitor-context.js';

/**
 * Records what Bitrix24 really has bound to our handler (`event.get`) in `events_bound`, at
 * most once per `auditEveryMs` per portal, so a binding Bitrix24 dropped shows up as drift.
 */
export async function auditBindings(
  ctx: MonitorContext,
  p: PortalRow,
  now: number,
): Promise<PortalRow> {
  if (p.status !== 'installed' || p.auth_mode !== 'oauth' || !p.access_token_enc) return p;
  const last = ctx.lastAudit.get(p.id);
  if (last !== undefined && now - last < ctx.auditEveryMs) return p;
  ctx.lastAudit.set(p.id, now);
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
