import type { PortalRow } from '../../db/stores/portals.js';
import { portalOrigin } from './frame-entry.js';

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
  if (['deal', 'lead', 'contact', 'company', 'quote'].includes(entityType)) {
    return `/crm/${entityType}/details/${entityId}/`;
  }
  const dynamic = /^dynamic:(\d{1,10})$/.exec(entityType);
  if (dynamic) return `/crm/type/${dynamic[1]}/details/${entityId}/`;
  // Guess: the user id in a task path does not limit who may open it; the docs show the
  // path with the viewer's id (sdk/bx24-js-sdk/additional-functions/bx24-open-path.md).
  if (entityType === 'task') return `/company/personal/user/0/tasks/task/view/${entityId}/`;
  return undefined;
}

/**
 * The paths `BX24.openPath` opens in the portal's slider ("The following prefixes are
 * supported", bx24-open-path.md); any other (a quote's card) answers PATH_NOT_AVAILABLE to
 * the callback and opens nothing, so the click, its default prevented, did nothing.
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
