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

/**
 * `crm.item.*` entityTypeIds of the records that have events of their own: a save through
 * crm.item sends the record's event (ONCRMQUOTEUPDATE, not ONCRMDYNAMICITEMUPDATE: CORE
 * crm lib/Service/Factory/Quote.php, Deal.php, … `getUpdateOperation`,
 * `Compatible\SendEvent('OnAfterCrmQuoteUpdate')`), which is stored under that type. Other
 * ids are smart processes (`dynamic:<id>`).
 */
export const ITEM_RECORD_TYPES: Readonly<Record<string, string>> = {
  '1': 'lead',
  '2': 'deal',
  '3': 'contact',
  '4': 'company',
  '7': 'quote',
};
