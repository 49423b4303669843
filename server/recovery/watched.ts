import { entityOf } from '../intake/entity.js';
import { entityRoot } from '../rules/context.js';
import { fieldRoot, fieldSegments } from '../rules/fields.js';
import type { EventMap } from '../rules/model.js';
import { isAddEvent, watchedFields } from '../rules/transitions.js';

/** An entity type the rules watch, and how the downtime sweep looks at it. */
export interface WatchedType {
  /** `deal`, `lead`, `contact`, `company`, `dynamic:128` (server/intake/entity.ts). */
  type: string;
  /** An ADD event of the family some enabled rule is triggered by. */
  addEvent?: string;
  /** An UPDATE (or other non-ADD) event of the family some enabled rule is triggered by. */
  updateEvent?: string;
  /** `changed` / `becomes` fields read from the record itself: compared with the snapshot. */
  fields: string[];
  /** Top-level record fields any condition reads (the list must return them). */
  select: string[];
}

/** CRM types the sweep can list with `crm.<type>.list` (smart processes: `crm.item.list`). */
const LISTABLE = new Set(['deal', 'lead', 'contact', 'company']);

/**
 * The entity types the enabled rules are triggered on, with what the sweep compares. Types
 * it cannot list by modification date (tasks, activities, quotes, old invoices, a smart
 * process named only by the generic ONCRMDYNAMICITEM… events) are returned as unsupported.
 */
export function watchedTypes(map: EventMap): { types: WatchedType[]; unsupported: string[] } {
  const byType = new Map<string, WatchedType>();
  const unsupported = new Set<string>();
  for (const rule of map.rules) {
    if (rule.enabled === false) continue;
    for (const raw of rule.on) {
      const event = raw.toUpperCase();
      if (/DELETE(_\d+)?$/.test(event)) continue; // a deleted record cannot be listed
      const { type } = entityOf(event, {});
      if (!type || type === 'app') continue;
      const listable = LISTABLE.has(type) || /^dynamic:\d+$/.test(type);
      if (!listable) {
        unsupported.add(type);
        continue;
      }
      let w = byType.get(type);
      if (!w) {
        w = { type, fields: [], select: [] };
        byType.set(type, w);
      }
      if (isAddEvent(event)) w.addEvent ??= event;
      else w.updateEvent ??= event;
      const root = entityRoot(type, event);
      const own = (f: string) => {
        const r = fieldRoot(f);
        return r === 'entity' || r === root;
      };
      for (const f of watchedFields(map, event)) {
        if (own(f) && !w.fields.includes(f)) w.fields.push(f);
      }
      for (const c of rule.when ?? []) {
        if (!own(c.field)) continue;
        const top = fieldSegments(c.field)[1];
        if (top && !w.select.includes(top)) w.select.push(top);
      }
    }
  }
  return { types: [...byType.values()], unsupported: [...unsupported] };
}
