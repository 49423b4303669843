/**
 * The record an event is about, by the start of its name (each event's page in
 * bitrix24/b24restdocs, e.g. api-reference/crm/deals/events/on-crm-deal-update.md): the type
 * its events are stored under (server/intake/entity.ts). `ONAPP…` events are about no record.
 */
export const CRM_TYPES: ReadonlyArray<[string, string]> = [
  ['ONCRMDEALRECURRING', 'deal_recurring'],
  ['ONCRMDEAL', 'deal'],
  ['ONCRMLEAD', 'lead'],
  ['ONCRMCONTACT', 'contact'],
  ['ONCRMCOMPANY', 'company'],
  ['ONCRMQUOTE', 'quote'],
  ['ONCRMINVOICE', 'invoice'],
  ['ONCRMACTIVITY', 'activity'],
  ['ONCRMTIMELINECOMMENT', 'timeline_comment'],
  ['ONTASKCOMMENT', 'task_comment'],
  ['ONTASK', 'task'],
  ['ONAPP', 'app'],
];

/** The record types events are stored under, besides `dynamic:<entityTypeId>`. */
export const ENTITY_TYPES: readonly string[] = CRM_TYPES.map(([, t]) => t).filter(
  (t) => t !== 'app',
);

/** Whether `type` names a record type events are stored under. */
export const isEntityType = (type: string): boolean =>
  ENTITY_TYPES.includes(type) || /^dynamic:\d{1,10}$/.test(type);
