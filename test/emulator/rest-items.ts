import { fireInBackground, restOrigin } from './event-delivery.js';
import { isRecord } from './http-util.js';
import type { SmartItem } from './item-store.js';
import { param, paramString, RestError, type MethodHandler } from './rest-error.js';

/**
 * `crm.item.*` for smart-process items (DOCS:api-reference/crm/universal/crm-item-*.md):
 * every answer wraps the record, `{item}` or `{items}`. Only smart processes (entityTypeId
 * 128 and up) and new invoices (31) are modelled; deals and leads stay on `crm.deal.*`.
 */

const notFound = (description: string): RestError => new RestError(400, 'NOT_FOUND', description);

export function isSmartProcessType(entityTypeId: number): boolean {
  return entityTypeId === 31 || entityTypeId >= 128;
}

function entityTypeIdOf(params: Record<string, unknown>): number {
  const raw = paramString(params, 'entityTypeId');
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !isSmartProcessType(n)) throw notFound('Smart process not found');
  return n;
}

function itemId(params: Record<string, unknown>): string {
  const raw = paramString(params, 'id');
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) throw notFound('Element not found');
  return String(Number(raw));
}

function itemFields(params: Record<string, unknown>): Record<string, unknown> {
  const fields = param(params, 'fields');
  if (!isRecord(fields)) {
    throw new RestError(400, 'INVALID_ARG_VALUE', 'Parameter fields must be an object');
  }
  return fields;
}

/** ONCRMDYNAMICITEM<ACTION> and its per-type twin `_<entityTypeId>` carry the same data. */
export function itemEventData(item: SmartItem): { FIELDS: { ID: number; ENTITY_TYPE_ID: number } } {
  return { FIELDS: { ID: item.id, ENTITY_TYPE_ID: item.entityTypeId } };
}

export const itemEventNames = (action: 'ADD' | 'UPDATE' | 'DELETE', entityTypeId: number) => [
  `ONCRMDYNAMICITEM${action}`,
  `ONCRMDYNAMICITEM${action}_${entityTypeId}`,
];

export const ITEM_METHODS: Readonly<Record<string, MethodHandler>> = {
  'crm.item.get': (params, _c, portal) => {
    const item = portal.items.get(entityTypeIdOf(params), itemId(params));
    if (!item) throw notFound('Element not found');
    return { result: { item } };
  },
  'crm.item.list': (params, _c, portal) => {
    const page = portal.items.list(
      entityTypeIdOf(params),
      param(params, 'filter'),
      param(params, 'start'),
      param(params, 'order'),
    );
    const out: { result: unknown; total?: number; next?: number } = {
      result: { items: page.items },
    };
    if (page.total !== undefined) out.total = page.total;
    if (page.next !== undefined) out.next = page.next;
    return out;
  },
  'crm.item.add': (params, call, portal) => {
    const typeId = entityTypeIdOf(params);
    const item = portal.items.add(typeId, itemFields(params), call.userId);
    for (const e of itemEventNames('ADD', typeId)) {
      fireInBackground(portal, e, itemEventData(item), call.userId, restOrigin(call));
    }
    return { result: { item } };
  },
  'crm.item.update': (params, call, portal) => {
    const typeId = entityTypeIdOf(params);
    const done = portal.items.update(typeId, itemId(params), itemFields(params), call.userId);
    if (!done) throw notFound('Element not found');
    // Nothing changed: the save is skipped, so no event (crm-item-update.md).
    if (done.changed) {
      for (const e of itemEventNames('UPDATE', typeId)) {
        fireInBackground(portal, e, itemEventData(done.item), call.userId, restOrigin(call));
      }
    }
    return { result: { item: done.item } };
  },
};
