/**
 * Event and placement codes the emulated portal knows. The event list is the one the
 * `events` method documents (DOCS:api-reference/events/events.md); the placement list
 * covers the CRM codes of DOCS:api-reference/widgets/placements.md that a CRM app uses.
 */

const CRM_ENTITIES = ['LEAD', 'DEAL', 'COMPANY', 'CONTACT', 'QUOTE', 'INVOICE'] as const;
const USERFIELD_SUFFIXES = ['ADD', 'UPDATE', 'DELETE', 'SETENUMVALUES'] as const;

function crmEvents(): string[] {
  const out: string[] = [];
  for (const entity of CRM_ENTITIES) {
    out.push(`ONCRM${entity}ADD`, `ONCRM${entity}UPDATE`, `ONCRM${entity}DELETE`);
    for (const s of USERFIELD_SUFFIXES) out.push(`ONCRM${entity}USERFIELD${s}`);
  }
  return out;
}

export const KNOWN_EVENTS: ReadonlySet<string> = new Set([
  'ONAPPUNINSTALL',
  'ONAPPINSTALL',
  'ONAPPUPDATE',
  'ONAPPPAYMENT',
  'ONAPPTEST',
  'ONAPPMETHODCONFIRM',
  'ONOFFLINEEVENT',
  'ONUSERADD',
  ...crmEvents(),
  'ONCRMINVOICESETSTATUS',
  'ONCRMDEALMOVETOCATEGORY',
  'ONCRMCURRENCYADD',
  'ONCRMCURRENCYUPDATE',
  'ONCRMCURRENCYDELETE',
  'ONCRMPRODUCTADD',
  'ONCRMPRODUCTUPDATE',
  'ONCRMPRODUCTDELETE',
  'ONCRMACTIVITYADD',
  'ONCRMACTIVITYUPDATE',
  'ONCRMACTIVITYDELETE',
  'ONCRMREQUISITEADD',
  'ONCRMREQUISITEUPDATE',
  'ONCRMREQUISITEDELETE',
  'ONCRMBANKDETAILADD',
  'ONCRMBANKDETAILUPDATE',
  'ONCRMBANKDETAILDELETE',
  'ONCRMDEALRECURRINGADD',
  'ONCRMDEALRECURRINGUPDATE',
  'ONCRMDEALRECURRINGDELETE',
  'ONCRMDEALRECURRINGEXPOSE',
  'ONCRMTIMELINECOMMENTADD',
  'ONCRMTIMELINECOMMENTUPDATE',
  'ONCRMTIMELINECOMMENTDELETE',
  'ONCRMDYNAMICITEMADD',
  'ONCRMDYNAMICITEMUPDATE',
  'ONCRMDYNAMICITEMDELETE',
  'ONCRMTYPEADD',
  'ONCRMTYPEUPDATE',
  'ONCRMTYPEDELETE',
  'ONTASKADD',
  'ONTASKUPDATE',
  'ONTASKDELETE',
  'ONTASKCOMMENTADD',
  'ONTASKCOMMENTUPDATE',
  'ONTASKCOMMENTDELETE',
]);

/**
 * Whether `event.bind` accepts the (upper-cased) name: a listed event, or a per-type smart-process
 * event such as `ONCRMDYNAMICITEMUPDATE_128` (DOCS:api-reference/crm/universal/events/index.md).
 */
export function isKnownEvent(name: string): boolean {
  return KNOWN_EVENTS.has(name) || /^ONCRMDYNAMICITEM(ADD|UPDATE|DELETE)_\d+$/.test(name);
}

/**
 * Events declared with `sendRefreshToken` in the rest module (CORE rest
 * classes/general/rest_provider.php `getDescription`: OnAppInstall, OnAppUpdate,
 * OnSubscriptionRenew, OnAppTest; lib/api/event.php: onOfflineEvent). ONAPPTEST was missing
 * here, so no test could see a test delivery confirm an install.
 */
export const EVENTS_WITH_REFRESH_TOKEN: ReadonlySet<string> = new Set([
  'ONAPPINSTALL',
  'ONAPPUPDATE',
  'ONSUBSCRIPTIONRENEW',
  'ONAPPTEST',
  'ONOFFLINEEVENT',
]);

/** Events declared with `sendAuth => false`: their `auth` never carries tokens. */
export const EVENTS_WITHOUT_AUTH: ReadonlySet<string> = new Set(['ONAPPUNINSTALL']);

function crmPlacements(): string[] {
  const out: string[] = [];
  for (const entity of ['LEAD', 'DEAL', 'CONTACT', 'COMPANY', 'QUOTE', 'SMART_INVOICE']) {
    out.push(
      `CRM_${entity}_DETAIL_TAB`,
      `CRM_${entity}_DETAIL_TOOLBAR`,
      `CRM_${entity}_DETAIL_ACTIVITY`,
      `CRM_${entity}_LIST_MENU`,
      `CRM_${entity}_LIST_TOOLBAR`,
    );
  }
  return out;
}

export const KNOWN_PLACEMENTS: ReadonlySet<string> = new Set([
  ...crmPlacements(),
  'LEFT_MENU',
  'REST_APP_URI',
  'PAGE_BACKGROUND_WORKER',
  'CRM_ANALYTICS_MENU',
  'USER_PROFILE_MENU',
  'USER_PROFILE_TOOLBAR',
]);

/**
 * The scope an event belongs to. `event.bind` looks an event up only in the scopes of the
 * caller's token plus the global one, and answers ERROR_EVENT_NOT_FOUND otherwise
 * (CORE:lib/api/event.php `eventBind`, the `$scopeList` loop). The app events and
 * ONOFFLINEEVENT are declared in the global scope (CORE:classes/general/rest_provider.php
 * `getDescription`, CORE:lib/api/event.php `onRestServiceBuildDescription`); CRM events by
 * the crm module, task events by the tasks module under `task` (the scope list of
 * DOCS:api-reference/scopes/permissions.md; that the ONTASK* events sit exactly there is
 * our reading, not a quoted line). ONUSERADD under `user` is a guess.
 */
export function scopeOfEvent(event: string): string | null {
  if (event.startsWith('ONCRM')) return 'crm';
  if (event.startsWith('ONTASK')) return 'task';
  if (event === 'ONUSERADD') return 'user';
  return null;
}

/**
 * Scopes that grant a method, or null for a method of the global scope (`batch`, `event.*`,
 * `app.info`, `profile`, `feature.get`, `server.time`, `user.admin`…: CORE rest_provider.php
 * `getDescription` puts them under CRestUtil::GLOBAL_SCOPE). A method outside the token's
 * scopes is refused with `insufficient_scope` (CORE:classes/general/rest_util.php
 * `checkAuth` via CORE:lib/oauth/auth.php `onRestCheckAuth`; status 401, the core's
 * OAuthException default: the 403 of DOCS:_includes/system-errors.md is the v3 server's, see
 * rest-server.ts `insufficientScope`).
 * `user.current`/`user.get` are also granted by the brief user scopes
 * (DOCS:api-reference/scopes/permissions.md, `user_brief`, `user_basic`).
 */
// Kept apart from server/bitrix/scopes.ts on purpose: the emulator models the core from its
// sources, so that it does not share a misunderstanding of the product's.
export function scopesOfMethod(method: string): readonly string[] | null {
  const m = method.toLowerCase();
  if (m.startsWith('crm.')) return ['crm'];
  if (m.startsWith('tasks.') || m.startsWith('task.')) return ['task'];
  if (m.startsWith('placement.')) return ['placement'];
  if (m === 'user.current' || m === 'user.get') return ['user', 'user_brief', 'user_basic'];
  return null;
}
