/**
 * The events `B24_EVENTS` may name: the CRM and task events of the `events` method's list
 * (https://apidocs.bitrix24.com/api-reference/events/events.html), the only ones the app's
 * scopes (`crm`, `task`) can bind, plus the app's own lifecycle events, which are bound
 * anyway. A name outside them is a typo: the portal would refuse to bind it at every install.
 */
const CRM_ENTITY_EVENTS = ['LEAD', 'DEAL', 'COMPANY', 'CONTACT', 'QUOTE', 'INVOICE'].flatMap(
  (entity) =>
    [
      'ADD',
      'UPDATE',
      'DELETE',
      ...['ADD', 'UPDATE', 'DELETE', 'SETENUMVALUES'].map((s) => `USERFIELD${s}`),
    ].map((s) => `ONCRM${entity}${s}`),
);

const CRUD = (family: string): string[] => ['ADD', 'UPDATE', 'DELETE'].map((s) => `${family}${s}`);

const BINDABLE: ReadonlySet<string> = new Set([
  'ONAPPINSTALL',
  'ONAPPUPDATE',
  'ONAPPUNINSTALL',
  ...CRM_ENTITY_EVENTS,
  'ONCRMINVOICESETSTATUS',
  'ONCRMDEALMOVETOCATEGORY',
  ...CRUD('ONCRMCURRENCY'),
  ...CRUD('ONCRMPRODUCT'),
  ...CRUD('ONCRMACTIVITY'),
  ...CRUD('ONCRMREQUISITE'),
  ...CRUD('ONCRMBANKDETAIL'),
  ...CRUD('ONCRMDEALRECURRING'),
  'ONCRMDEALRECURRINGEXPOSE',
  ...CRUD('ONCRMTIMELINECOMMENT'),
  ...CRUD('ONCRMDYNAMICITEM'),
  ...CRUD('ONCRMTYPE'),
  ...CRUD('ONTASK'),
  ...CRUD('ONTASKCOMMENT'),
]);

/**
 * Whether `B24_EVENTS` may name this (upper-cased) event: a listed one, or a smart process's
 * own event such as `ONCRMDYNAMICITEMUPDATE_128`
 * (https://apidocs.bitrix24.com/api-reference/crm/universal/events/index.html).
 */
export function isBindableEvent(name: string): boolean {
  return BINDABLE.has(name) || /^ONCRMDYNAMICITEM(ADD|UPDATE|DELETE)_\d{1,10}$/.test(name);
}
