/**
 * Transitions: Bitrix24 sends only the entity ID, never before/after values
 * (https://apidocs.bitrix24.com/api-reference/events/index.html), so
 * `changed` and `becomes` compare a fresh read with a per-entity snapshot of the watched
 * fields that the processor keeps from the previous event of that entity.
 *
 * FIRST SIGHTING — there is no snapshot of the field yet (the entity was never seen, or the
 * field was not watched when it was last seen):
 *
 * - On an ADD event (`ONCRMDEALADD`, `ONCRMDYNAMICITEMADD`, `ONTASKADD`, …) the record did not
 *   exist before, so every field changed from "nothing" to its value: `becomes X` holds when
 *   the value is X (a deal created directly in WON did become WON) and `changed` holds when
 *   the value is not empty.
 * - On any other event (UPDATE, …) we cannot know the old value, so `becomes` and `changed`
 *   do NOT hold. Otherwise every old deal would fire its rules the first time it is touched
 *   after install (a deal sitting in WON for a year, renamed today, is not "newly won"). The
 *   snapshot taken on that event makes the next change detectable.
 *
 * The snapshot is kept for every event of the entity's family (ADD and UPDATE of deals alike,
 * see `watchedFields`), so a deal created after install and won later is detected.
 */
import { entityTypeOfEvent } from './context.js';
import { isEmpty, readField, sameValue, show } from './fields.js';
import type { EventMap, FieldPath, Snapshot } from './model.js';
import type { TemplateContext } from './templates.js';

/** `ONCRMDEALADD`, `ONCRMDYNAMICITEMADD`, `ONTASKADD`: the record is new. */
export function isAddEvent(eventName: string): boolean {
  return /ADD(_\d+)?$/i.test(eventName);
}

/**
 * The family of events whose rules' watched fields each of them saves into the record's one
 * snapshot: `ONCRMDEALADD` and `ONCRMDEALUPDATE` → `deal`. Events of unknown shape form a
 * family of their own, and so does ONCRMINVOICESETSTATUS: it comes with every add and
 * update of an old invoice, before their own event (CORE crm classes/general/crm_invoice.php
 * `CCrmInvoice::Add` calls SetStatus first). In their family it would save the new status
 * first, and a rule on ONCRMINVOICEUPDATE with `STATUS_ID becomes P` would then see no
 * change. On its own it saves only the fields its own rules watch; a field watched by rules
 * on both is taken by the first that comes (server/README.md says so).
 */
export function eventFamily(eventName: string): string {
  const name = eventName.toUpperCase();
  // A deal moved to another pipeline comes with the move's own UPDATE; which arrives first
  // is not known, so it is a family of its own as well.
  if (name === 'ONCRMINVOICESETSTATUS' || name === 'ONCRMDEALMOVETOCATEGORY') return name;
  return entityTypeOfEvent(name) ?? name;
}

/**
 * The fields to keep in the per-entity snapshot after processing `eventName`: every
 * `changed` / `becomes` field of every enabled rule triggered by an event of the same family,
 * so the ADD event already records what a later UPDATE rule compares with.
 */
export function watchedFields(map: EventMap, eventName: string): string[] {
  const family = eventFamily(eventName);
  const out = new Set<string>();
  for (const rule of map.rules) {
    if (rule.enabled === false) continue;
    if (!rule.on.some((e) => eventFamily(e) === family)) continue;
    for (const c of rule.when ?? []) {
      if ('changed' in c || 'becomes' in c) out.add(c.field);
    }
  }
  return [...out];
}

/** The values of `fields` now, to store as the entity's snapshot (missing → null). */
export function takeSnapshot(fields: readonly FieldPath[], ctx: TemplateContext): Snapshot {
  const snap: Snapshot = {};
  for (const f of fields) {
    const v = readField(ctx, f);
    snap[f] = v === undefined ? null : v;
  }
  return snap;
}

export interface Transition {
  /** Whether the value before this event is known (a snapshot of the field exists). */
  known: boolean;
  before: unknown;
  now: unknown;
}

export function transitionOf(
  field: FieldPath,
  ctx: TemplateContext,
  previous: Snapshot | undefined,
): Transition {
  const now = readField(ctx, field);
  if (previous !== undefined && Object.hasOwn(previous, field)) {
    return { known: true, before: previous[field], now };
  }
  return { known: false, before: undefined, now };
}

export interface TransitionVerdict {
  holds: boolean;
  reason: string;
}

/** `{field, becomes: value}` against the snapshot; see the first-sighting rules above. */
export function checkBecomes(
  field: FieldPath,
  value: unknown,
  t: Transition,
  eventName: string,
): TransitionVerdict {
  if (!t.known) {
    if (!isAddEvent(eventName)) {
      return {
        holds: false,
        reason: `${field} is ${show(t.now)} but its earlier value is unknown (first sighting on ${eventName}; becomes needs a seen change)`,
      };
    }
    return sameValue(t.now, value)
      ? { holds: true, reason: `${field} became ${show(value)} (new record)` }
      : { holds: false, reason: `${field} is ${show(t.now)}, not ${show(value)} (new record)` };
  }
  if (!sameValue(t.now, value)) {
    return { holds: false, reason: `${field} is ${show(t.now)}, not ${show(value)}` };
  }
  if (sameValue(t.before, value)) {
    return { holds: false, reason: `${field} was already ${show(value)}` };
  }
  return { holds: true, reason: `${field} became ${show(value)} (was ${show(t.before)})` };
}

/** `{field, changed: true}` against the snapshot; see the first-sighting rules above. */
export function checkChanged(
  field: FieldPath,
  t: Transition,
  eventName: string,
): TransitionVerdict {
  if (!t.known) {
    if (!isAddEvent(eventName)) {
      return {
        holds: false,
        reason: `${field} earlier value is unknown (first sighting on ${eventName}; changed needs a seen change)`,
      };
    }
    return isEmpty(t.now)
      ? { holds: false, reason: `${field} is empty on the new record` }
      : { holds: true, reason: `${field} set to ${show(t.now)} (new record)` };
  }
  return sameValue(t.before, t.now)
    ? { holds: false, reason: `${field} unchanged (${show(t.now)})` }
    : { holds: true, reason: `${field} changed from ${show(t.before)} to ${show(t.now)}` };
}
