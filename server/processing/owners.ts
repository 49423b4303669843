import type { Knex } from 'knex';
import { isDeleteEvent } from '../intake/entity.js';
import type { EventRow } from '../../db/stores/events.js';
import {
  hasEventOwners,
  linkEventOwners,
  ownersOfEarlierEvent,
} from '../../db/stores/event-owners.js';
import type { Entity } from './entity-reader.js';

/** A CRM record another record belongs to: a deal an activity was made in, and so on. */
export interface Owner {
  type: OwnerType;
  id: string;
}

export type OwnerType = 'lead' | 'deal' | 'contact' | 'company';

/**
 * CRM type ids (CORE: crm/classes/general/crm_owner_type.php `CCrmOwnerType`; DOCS:
 * api-reference/crm/data-types.md#object_type) of the records whose cards show events.
 */
const BY_TYPE_ID: Record<string, OwnerType> = { 1: 'lead', 2: 'deal', 3: 'contact', 4: 'company' };

/** `UF_CRM_TASK` prefixes (CORE: same file, `CCrmOwnerTypeAbbr`): `D_12` is deal 12. */
const BY_ABBR: Record<string, OwnerType> = { L: 'lead', D: 'deal', C: 'contact', CO: 'company' };

const idOf = (v: unknown): string | undefined => {
  const s = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : '';
  return /^[1-9]\d{0,19}$/.test(s) ? s : undefined;
};

/**
 * The records `entity` (as its reader returned it) belongs to, by the fields Bitrix24 fills
 * in; an event of it is shown on their cards as well as its own (the deal tab lists a call
 * made in the deal). Bitrix24 sends only the record's ID, so this is known once it is read.
 *
 * - activity: `OWNER_TYPE_ID` and `OWNER_ID` (DOCS: api-reference/crm/timeline/activities/
 *   activity-base/crm-activity-fields.md; `crm.activity.get` answers the activity table's
 *   row, CORE: crm/classes/general/restservice.php `CCrmActivityRestProxy::innerGet`), and
 *   its `bindings`, what crm.activity.binding.list answers (the cards it shows in, those the
 *   user may read, CORE crm/lib/controller/activity/binding.php `listAction`): a call owned by
 *   the client's contact and bound to the deal in progress is the deal's too, and one whose
 *   owner changed keeps its bindings (CORE crm classes/general/crm_activity.php `Update`
 *   saves BINDINGS only when given);
 * - task: `ufCrmTask`, `["D_12", "C_3"]` (DOCS: api-reference/tasks/fields.md);
 * - quote: `DEAL_ID`, old invoice: `UF_DEAL_ID`;
 * - smart-process item: `parentId2`, the deal it was made from (DOCS:
 *   api-reference/crm/universal/crm-item-get.md, `parentId{entityTypeId}`).
 */
export function ownersOf(
  entityType: string | null,
  entity: Entity | null | undefined,
  bindings: readonly unknown[] = [],
): Owner[] {
  if (!entity || !entityType) return [];
  const out: Owner[] = [];
  const add = (type: OwnerType | undefined, raw: unknown) => {
    const id = idOf(raw);
    if (type && id && !out.some((o) => o.type === type && o.id === id)) out.push({ type, id });
  };
  switch (entityType) {
    case 'activity':
      // Its owner, and its bindings: the cards it shows in. The owner too, as the bindings
      // answered leave out those the app's user may not read (`canView`).
      add(BY_TYPE_ID[String(entity.OWNER_TYPE_ID ?? '')], entity.OWNER_ID);
      for (const b of bindings) {
        const { entityTypeId, entityId } = (b ?? {}) as Record<string, unknown>;
        add(BY_TYPE_ID[String(entityTypeId ?? '')], entityId);
      }
      break;
    case 'task': {
      const links = entity.ufCrmTask ?? entity.UF_CRM_TASK;
      for (const link of Array.isArray(links) ? links : []) {
        const m = /^([A-Z]{1,2})_(\d+)$/.exec(String(link));
        if (m) add(BY_ABBR[m[1]!], m[2]);
      }
      break;
    }
    case 'quote':
      add('deal', entity.DEAL_ID);
      break;
    case 'invoice':
      add('deal', entity.UF_DEAL_ID);
      break;
    default:
      if (entityType.startsWith('dynamic:')) add('deal', entity.parentId2);
  }
  return out;
}

/** Whether records of this type can belong to another (ownersOf knows their fields). */
const hasOwners = (entityType: string): boolean =>
  ['activity', 'task', 'quote', 'invoice'].includes(entityType) ||
  entityType.startsWith('dynamic:');

/**
 * Links the event to the records its record belongs to, once it has been read (`entity`:
 * the record; null when it no longer exists or could not be read). A delete event, or a
 * record gone or unreadable, has no fields to tell: it takes the owners of the record's
 * last event that was read, so "the call was deleted" (or "failed") still shows in the deal
 * it was made in. Linked once: a retry or a replay, which reads the record as it is now
 * (a call since moved to another deal), keeps what the event was first linked to.
 */
export async function recordEventOwners(
  db: Knex,
  event: Pick<EventRow, 'id' | 'portal_id' | 'event' | 'entity_type' | 'entity_id'>,
  entity: Entity | null | undefined,
  bindings?: readonly unknown[],
): Promise<void> {
  const { portal_id: portalId, entity_type: type, entity_id: id } = event;
  if (portalId === null || !type || !id || !hasOwners(type) || entity === undefined) return;
  if (await hasEventOwners(db, event.id)) return;
  const gone = entity === null || isDeleteEvent(event.event);
  const owners = gone
    ? await ownersOfEarlierEvent(db, portalId, type, id, event.id)
    : ownersOf(type, entity, bindings);
  await linkEventOwners(db, portalId, event.id, owners);
}
