import { isDeleteEvent } from '../intake/entity.js';
import { BitrixPermanentError } from '../bitrix/errors.js';
import { PausedError } from '../lib/retry-errors.js';
import { restWaitMs } from '../queue/destinations.js';
import type { Rule } from '../rules/model.js';
import { relatedToLoad } from '../rules/needs.js';
import type { EventRow } from '../../db/stores/events.js';
import { dueEntityRefs } from '../../db/stores/jobs.js';
import type { PortalRow } from '../../db/stores/portals.js';
import type { ProcessContext } from './context.js';
import { ACTIVITY_BINDINGS, type Entity } from './entity-reader.js';

/**
 * The entity an event names, read now (Bitrix24 sends only its ID): `null` when it no longer
 * exists, undefined when the event names none or no reader knows its type. A delete event's
 * entity is not read: it is just `{ ID }`.
 */
export async function readEventEntity(
  ctx: ProcessContext,
  event: EventRow,
  portal: PortalRow,
  attempt: number,
): Promise<Entity | null | undefined> {
  if (!event.entity_type || !event.entity_id) return undefined;
  if (isDeleteEvent(event.event)) return { ID: event.entity_id };
  const { deps, reader } = ctx;
  // Waiting is not working: a read the portal's budget would hold up gives the worker
  // back and comes again when the bucket has drained.
  const waitMs = restWaitMs(deps.bitrix.limiter, portal.member_id);
  if (waitMs > ctx.maxRestWaitMs)
    throw new PausedError(`waiting ${waitMs} ms for the portal's REST budget`, waitMs, {
      waitingFor: `rest:${portal.domain}`,
    });
  // Read ahead: this entity and those of the portal's other due events, in one batch.
  // A retry or a replay acts later than the first read: it must read afresh (the
  // stale-trigger guard depends on it), so a cached read does not count for it.
  const freshFor = attempt > 1 || event.evaluated_at !== null ? Number.MAX_SAFE_INTEGER : event.id;
  const notBefore = settledAt(ctx, event);
  const ahead = await dueEntityRefs(deps.db, portal.id, ctx.now(), 49);
  const self = { type: event.entity_type, id: event.entity_id };
  const readAhead =
    freshFor === event.id
      ? reader.prefetch(portal, [self, ...ahead], freshFor, notBefore)
      : Promise.resolve();
  await readAhead.catch((e: unknown) => {
    // Reading ahead is an optimisation; the single read below reports real trouble.
    deps.logger.debug({ err: (e as Error).message }, 'read-ahead batch failed');
  });
  return reader.read(portal, self.type, self.id, freshFor, notBefore);
}

/**
 * When a read first serves an event: its settling time (EVENT_SETTLE_MS after its receipt),
 * so that it shows every change of the event's second. A read started earlier, for another
 * event, does not count for this one.
 */
function settledAt(ctx: ProcessContext, event: Pick<EventRow, 'received_at'>): number {
  return event.received_at + ctx.deps.config.worker.settleMs;
}

/**
 * The records an activity is bound to (crm.activity.binding.list), mostly from the batch that
 * read the activity (where a refusal is kept as "not known"); undefined when they cannot be
 * known, and the activity's owner is then all there is. Read alone only on a retry: while the
 * portal's REST budget is held the job waits (PausedError, no attempt spent; its links are
 * written once, so skipping would leave a bound call off its deal for good), a transient
 * failure is retried with the job, and a refusal (the method missing, no access) is no reason
 * to fail the event.
 */
export async function readActivityBindings(
  ctx: ProcessContext,
  event: Pick<EventRow, 'id' | 'received_at' | 'entity_id'>,
  portal: PortalRow,
): Promise<unknown[] | undefined> {
  const id = event.entity_id;
  if (!id) return undefined;
  const notBefore = settledAt(ctx, event);
  const kept = ctx.reader.cached(portal, ACTIVITY_BINDINGS, id, event.id, notBefore);
  let r: Entity | null | undefined;
  if (kept) r = kept.value;
  else {
    const waitMs = restWaitMs(ctx.deps.bitrix.limiter, portal.member_id);
    if (waitMs > ctx.maxRestWaitMs)
      throw new PausedError(`waiting ${waitMs} ms for the portal's REST budget`, waitMs, {
        waitingFor: `rest:${portal.domain}`,
      });
    try {
      r = await ctx.reader.read(portal, ACTIVITY_BINDINGS, id, event.id, notBefore);
    } catch (e) {
      if (!(e instanceof BitrixPermanentError)) throw e;
      ctx.deps.logger.debug({ err: e.message }, 'activity bindings not read');
      return undefined;
    }
  }
  return Array.isArray(r?.bindings) ? r.bindings : undefined;
}

/** The related records (`contact`, `company`) the rules' conditions and templates use. */
export async function loadRelated(
  ctx: ProcessContext,
  portal: PortalRow,
  rules: Rule[],
  entity: Entity | undefined,
  event: Pick<EventRow, 'id' | 'received_at'>,
): Promise<Record<string, Entity | undefined>> {
  const related: Record<string, Entity | undefined> = {};
  if (!entity) return related;
  for (const root of relatedToLoad(rules)) {
    // An old invoice names them UF_CONTACT_ID / UF_COMPANY_ID (DOCS:api-reference/crm/
    // outdated/invoice/crm-invoice-fields.md; CORE crm classes/general/restservice_invoice.php
    // `getFieldsInfo`); a smart-process item contactId / companyId.
    const up = root.toUpperCase();
    const id = entity[`${up}_ID`] ?? entity[`UF_${up}_ID`] ?? entity[`${root}Id`];
    if (id === undefined || id === null || id === '' || id === '0' || id === 0) continue;
    const rec = await ctx.reader.read(portal, root, String(id), event.id, settledAt(ctx, event));
    if (rec) related[root] = rec;
  }
  return related;
}
