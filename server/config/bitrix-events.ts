import leven from 'leven';

/**
 * The events `B24_EVENTS` is checked against: the CRM and task events of the `events`
 * method's list (https://apidocs.bitrix24.com/api-reference/events/events.html), the families
 * the app's scopes (`crm`, `task`) reach, plus the app's own lifecycle events, which are bound
 * anyway. Bitrix24 adds events over time and the list is not exhaustive, so a name outside it
 * is refused only when it is a typo of one in it (`eventTypo`); another is warned about.
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

/**
 * The listed event that `name` (not listed itself) is a typo of: at most two letters added,
 * dropped or changed (ONCRMDEALUPDTE, ONCRMDAELADD), else undefined.
 */
export function eventTypo(name: string): string | undefined {
  let best: { event: string; d: number } | undefined;
  for (const event of BINDABLE) {
    const d = leven(name, event);
    if (d <= 2 && (!best || d < best.d)) best = { event, d };
  }
  return best?.event;
}
