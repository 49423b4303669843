import { CRM_TYPES } from '../lib/entity-types.js';

/**
 * What an event is about, from its name and `data` (each event's page in bitrix24/b24restdocs,
 * e.g. api-reference/crm/deals/events/on-crm-deal-update.md).
 */
export interface EntityRef {
  type: string | null;
  id: string | null;
}

/** A deletion (`ONCRMDEALDELETE`, `ONCRMDYNAMICITEMDELETE_1038`): its entity cannot be read. */
export const isDeleteEvent = (event: string): boolean => /DELETE(_\d+)?$/.test(event);

const idOf = (v: unknown): string | null => {
  if (typeof v === 'string' && /^[A-Za-z0-9_-]{1,32}$/.test(v) && v !== 'undefined') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
};

const field = (data: Record<string, unknown>, block: string, key: string): unknown => {
  const b = data[block];
  return typeof b === 'object' && b !== null ? (b as Record<string, unknown>)[key] : undefined;
};

/**
 * `ONCRMDEALUSERFIELDADD` and the like are about a user field, not a record: their
 * `FIELDS[ID]` is the field's id, beside `ENTITY_ID` (`CRM_DEAL`) and `FIELD_NAME` (CORE:
 * crm/classes/general/restservice.php `CCrmRestProxyBase::processEntityUserFieldEvent`).
 * Stored as deal <field id>, they read a deal of that id and queued behind its events.
 */
const USER_FIELD_EVENT = /^ONCRM[A-Z]+USERFIELD(ADD|UPDATE|DELETE|SETENUMVALUES)$/;

export function entityOf(event: string, data: Record<string, unknown>): EntityRef {
  const name = event.toUpperCase();
  if (name.includes('USERFIELD') && USER_FIELD_EVENT.test(name)) return { type: null, id: null };
  if (name.startsWith('ONCRMDYNAMICITEM')) {
    // A smart process type id (entityTypeId) is an integer: at most 10 digits, so that
    // `dynamic:<id>` fits its column whatever a sender writes.
    const given = idOf(field(data, 'FIELDS', 'ENTITY_TYPE_ID')) ?? /_(\d+)$/.exec(name)?.[1];
    const typeId = given !== undefined && /^\d{1,10}$/.test(given) ? given : undefined;
    return {
      type: typeId ? `dynamic:${typeId}` : 'dynamic',
      id: idOf(field(data, 'FIELDS', 'ID')),
    };
  }
  for (const [prefix, type] of CRM_TYPES) {
    if (!name.startsWith(prefix)) continue;
    if (type === 'app') return { type, id: null };
    if (type === 'task' || type === 'task_comment') {
      const id =
        idOf(field(data, 'FIELDS_AFTER', 'ID')) ?? idOf(field(data, 'FIELDS_BEFORE', 'ID'));
      // A new comment in a task's chat (every portal since tasks 25.700.0) has ID 0 and is
      // named by its MESSAGE_ID (CORE tasks classes/general/commentitem.php `onEventFilter`;
      // on-task-comment-add.md). As `task_comment 0` every comment of the portal was one
      // record: one at a time, across all tasks, and listed under a card that does not exist.
      if (type === 'task_comment' && (id === null || id === '0')) {
        return { type, id: idOf(field(data, 'FIELDS_AFTER', 'MESSAGE_ID')) ?? id };
      }
      return { type, id };
    }
    return { type, id: idOf(field(data, 'FIELDS', 'ID')) };
  }
  return { type: null, id: idOf(field(data, 'FIELDS', 'ID')) };
}
