import type { PortalRow } from '../../db/stores/portals.js';
import { portalOrigin } from './frame-entry.js';

/** CCrmOwnerType::Quote. */
const QUOTE_ENTITY_TYPE_ID = 7;

/**
 * The portal path of a record's card, as `BX24.openPath` takes it
 * (b24restdocs sdk/bx24-js-sdk/additional-functions/bx24-open-path.md): `/crm/deal/details/5/`,
 * `/crm/type/128/details/3/` for a smart-process item; tasks open in the task view.
 * Undefined for records without a card (activities, unknown types).
 */
export function crmCardPath(
  entityType: string | null | undefined,
  entityId: string | null | undefined,
): string | undefined {
  if (!entityType || !entityId || !/^\d{1,20}$/.test(entityId)) return undefined;
  if (['deal', 'lead', 'contact', 'company'].includes(entityType)) {
    return `/crm/${entityType}/details/${entityId}/`;
  }
  // A quote is a factory type on every portal (CORE crm lib/settings/quotesettings.php:
  // `isFactoryEnabled` answers true), so its card has the new route
  // (crm lib/Service/Router.php `getItemDetailUrl`; lib/Service/Router/Page/ItemDetails/
  // QuoteDetailsPage.php: `type/7/details/{ENTITY_ID}/`). There is no /crm/quote/details/.
  if (entityType === 'quote') return `/crm/type/${QUOTE_ENTITY_TYPE_ID}/details/${entityId}/`;
  const dynamic = /^dynamic:(\d{1,10})$/.exec(entityType);
  if (dynamic) return `/crm/type/${dynamic[1]}/details/${entityId}/`;
  // Guess: the user id in a task path does not limit who may open it; the docs show the
  // path with the viewer's id (sdk/bx24-js-sdk/additional-functions/bx24-open-path.md).
  if (entityType === 'task') return `/company/personal/user/0/tasks/task/view/${entityId}/`;
  return undefined;
}

/**
 * The paths `BX24.openPath` opens in the portal's slider (bx24-open-path.md: until 2026 "The
 * following prefixes are supported", now the same list as examples); any other answers
 * PATH_NOT_AVAILABLE to the callback and opens nothing, so a click with its default prevented
 * would do nothing: such a card stays a plain link.
 */
const SLIDER_PREFIXES = [
  '/crm/deal/',
  '/crm/lead/',
  '/crm/contact/',
  '/crm/company/',
  '/crm/type/',
  '/company/personal/user/',
];

/** The card's path for `BX24.openPath`, where the slider opens it; otherwise undefined (a plain link). */
export function sliderPath(
  entityType: string | null | undefined,
  entityId: string | null | undefined,
): string | undefined {
  const p = crmCardPath(entityType, entityId);
  return p !== undefined && SLIDER_PREFIXES.some((x) => p.startsWith(x)) ? p : undefined;
}

/** The card's full URL on the portal (scheme of its REST endpoint), for a plain link. */
export function crmCardUrl(
  portal: Pick<PortalRow, 'domain' | 'client_endpoint'>,
  entityType: string | null | undefined,
  entityId: string | null | undefined,
): string | undefined {
  const p = crmCardPath(entityType, entityId);
  return p === undefined ? undefined : `${portalOrigin(portal)}${p}`;
}
