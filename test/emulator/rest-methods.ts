import type { EntityStore } from './crm-store.js';
import { formatBitrixDate } from './crm-store.js';
import { ACTIVITY_TYPES } from './crm-entities.js';
import { fireInBackground, restOrigin } from './event-delivery.js';
import { isRecord } from './http-util.js';
import { KNOWN_EVENTS } from './known-names.js';
import {
  param,
  paramString,
  RestError,
  type CallContext,
  type MethodHandler,
  type MethodResult,
} from './rest-error.js';
import { OFFLINE_METHODS } from './offline-queue.js';
import { ACTIVITY_BINDING_METHODS, activityMade, activityRebound } from './activity-bindings.js';
import { BINDING_METHODS } from './rest-bindings.js';
import { QUOTE_INVOICE_METHODS } from './rest-quote-invoice.js';
import { ITEM_METHODS } from './rest-items.js';
import { METADATA_METHODS } from './rest-metadata.js';
import { TASK_METHODS } from './rest-tasks.js';
import type { PortalState } from './state.js';
import type { CrmItem, EmulatedUser } from './types.js';

const ok = (result: unknown): MethodResult => ({ result });

/** CRM errors carry an empty code and the text in the description (crm-deal-get.md). */
const crmError = (description: string): RestError => new RestError(400, '', description);

/**
 * A user as `user.current` / `user.get` answer. With only `user_brief` (the app's scope) the
 * core gives the name fields, no EMAIL (CORE:lib/api/user.php `getAllowedUserFields`:
 * `SCOPE_USER_BRIEF` → `ALLOWED_USER_NAME_FIELDS`, which has ID, XML_ID, ACTIVE, NAME,
 * LAST_NAME, SECOND_NAME, IS_ONLINE, TIME_ZONE, PERSONAL_GENDER, UF_DEPARTMENT… and no EMAIL);
 * `user_basic` or `user` add it.
 */
function userCurrent(u: EmulatedUser, scopes: ReadonlySet<string>): Record<string, unknown> {
  const contacts = scopes.has('user') || scopes.has('user_basic');
  return {
    ID: String(u.id),
    XML_ID: '',
    ACTIVE: u.active ?? true,
    NAME: u.name,
    LAST_NAME: u.lastName ?? '',
    SECOND_NAME: '',
    ...(contacts ? { EMAIL: u.email ?? `user${u.id}@example.test` } : {}),
    PERSONAL_GENDER: '',
    TIME_ZONE: u.timeZone ?? '',
    IS_ONLINE: 'Y',
    UF_DEPARTMENT: [1],
  };
}

/**
 * `app.info` names the app that owns the token (DOCS:api-reference/common/system/app-info.md): for
 * a local app CODE is its client_id. A token of another app on the same portal answers with that
 * app's CODE, which is how a token is told apart from ours.
 *
 * app.info (DOCS:api-reference/common/system/app-info.md; a webhook gets SCOPE and LICENSE
 * only, as the doc's webhook example), profile (DOCS:api-reference/common/users/profile.md),
 * user.current / user.get (DOCS:api-reference/user/*), user.admin
 * (DOCS:api-reference/common/users/user-admin.md: `result` true or false), events
 * (DOCS:api-reference/events/events.md), server.time (DOCS:api-reference/common/system/
 * server-time.md). Field sets follow the doc examples; the values are ours.
 */
const APP_METHODS: Record<string, MethodHandler> = {
  'app.info': (_p, call, portal) =>
    ok(
      call.via === 'webhook'
        ? { SCOPE: portal.scope.split(','), LICENSE: 'en_pro100' }
        : {
            ID: call.clientId === portal.ctx.clientId ? 1 : 2,
            // A local app's CODE is its client_id: CORE:lib/app.php `AppTable::onAfterAdd`
            // stores 'CODE' => the client_id the OAuth server issued (STATUS_LOCAL); a
            // marketplace app's CODE is its marketplace code (B24_APP_CODE), as in
            // DOCS:api-reference/common/system/app-info.md's example.
            CODE: call.clientId ?? portal.ctx.clientId,
            VERSION: portal.appVersion,
            STATUS: portal.status,
            INSTALLED: portal.installState === 'installed',
            PAYMENT_EXPIRED: 'N',
            DAYS: null,
            LANGUAGE_ID: 'en',
            LICENSE: 'en_pro100',
            LICENSE_TYPE: 'pro100',
            LICENSE_FAMILY: 'pro',
          },
    ),
  // api-reference/common/users/profile.md: TIME_ZONE is the user's zone (`Europe/Berlin`),
  // an empty string when the user has not set one.
  profile: (_p, call) =>
    ok({
      ID: String(call.userId),
      ADMIN: call.isAdmin,
      NAME: call.user?.name ?? '',
      LAST_NAME: call.user?.lastName ?? '',
      PERSONAL_GENDER: '',
      TIME_ZONE: call.user?.timeZone ?? '',
    }),
  'user.current': (_p, call) => {
    if (!call.user) throw new RestError(400, 'ERROR_NOT_FOUND', 'User not found');
    return ok(userCurrent(call.user, call.scopes));
  },
  'user.admin': (_p, call) => ok(call.isAdmin),
  // DOCS api-reference/user/user-get.md: `FILTER` (`ACTIVE` true leaves dismissed users out),
  // and `start`: "The page size of results is always static: 50 records", with `total`
  // (CORE lib/api/user.php `userGet`: getNavData, setNavData; `next` when more follow).
  'user.get': (params, call, portal) => {
    const filter = param(params, 'FILTER');
    const id = param(params, 'ID') ?? (isRecord(filter) ? param(filter, 'ID') : undefined);
    const active = isRecord(filter) ? param(filter, 'ACTIVE') : undefined;
    const onlyActive = active === true || active === 'true' || active === 'Y' || active === '1';
    const users = portal.users.filter(
      (u) =>
        (id === undefined || String(u.id) === String(id)) && (!onlyActive || (u.active ?? true)),
    );
    const start = Math.max(0, Number(paramString(params, 'start')) || 0);
    const page = users.slice(start, start + 50);
    return {
      result: page.map((u) => userCurrent(u, call.scopes)),
      total: users.length,
      ...(start + 50 < users.length ? { next: start + 50 } : {}),
    };
  },
  events: () => ok([...KNOWN_EVENTS]),
  // api-reference/common/system/server-time.md: the portal's time with its offset
  // (`YYYY-MM-DDThh:mm:ss±hh:mm`); the emulated portal's zone is +03:00 (crm-store.ts).
  'server.time': (_p, _c, portal) => ok(formatBitrixDate(portal.ctx.now())),
};

function entityId(params: Record<string, unknown>): string {
  const raw = paramString(params, 'id');
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) throw crmError('ID is not defined or invalid.');
  return String(Number(raw));
}

function entityFields(params: Record<string, unknown>): Record<string, unknown> {
  const fields = param(params, 'fields');
  if (!isRecord(fields)) throw crmError("Parameter 'fields' must be array.");
  return fields;
}

/**
 * get / list / add / update / delete for one CRM entity (DOCS:api-reference/crm/deals/
 * crm-deal-*.md and the contact/company pages), firing ONCRM<ENTITY><ACTION> after the
 * answer, as the portal's event queue does (DOCS:api-reference/events/index.md).
 */
function crmMethods(
  prefix: string,
  store: (p: PortalState) => EntityStore,
  opts: {
    /**
     * The description of a get / an update or delete of a record that is not there (a
     * delete's own, where it differs from an update's).
     */
    notFound?: { get: string; change: string; delete?: string };
    /** Refuses the fields of a new record (throws a RestError). */
    checkAdd?: (fields: Record<string, unknown>) => void;
    /** Why get refuses a record that is there, if it does. */
    refuseGet?: (item: Record<string, unknown>) => string | undefined;
    /** What else a new record's fields make, beside the record (an activity's bindings). */
    afterAdd?: (portal: PortalState, item: CrmItem, fields: Record<string, unknown>) => void;
    /** Likewise for an update's fields. */
    afterUpdate?: (portal: PortalState, item: CrmItem, fields: Record<string, unknown>) => void;
  } = {},
): Record<string, MethodHandler> {
  const notFound = opts.notFound ?? { get: 'Not found', change: 'Not found' };
  const eventBase = `ONCRM${prefix.toUpperCase()}`;
  const fire = (portal: PortalState, action: string, id: string, call: CallContext): void =>
    fireInBackground(
      portal,
      `${eventBase}${action}`,
      { FIELDS: { ID: id } },
      call.userId,
      restOrigin(call),
    );
  return {
    [`crm.${prefix}.get`]: (params, _c, portal) => {
      const item = store(portal).get(entityId(params));
      if (!item) throw crmError(notFound.get);
      const refused = opts.refuseGet?.(item);
      if (refused !== undefined) throw crmError(refused);
      return ok(item);
    },
    [`crm.${prefix}.list`]: (params, _c, portal) => {
      const page = store(portal).list({
        filter: param(params, 'filter'),
        order: param(params, 'order'),
        select: param(params, 'select'),
        start: param(params, 'start'),
      });
      const out: MethodResult = { result: page.items };
      if (page.next !== undefined) out.next = page.next;
      if (page.total !== undefined) out.total = page.total;
      return out;
    },
    [`crm.${prefix}.add`]: (params, call, portal) => {
      const fields = entityFields(params);
      opts.checkAdd?.(fields);
      const item = store(portal).add(fields, call.userId);
      opts.afterAdd?.(portal, item, fields);
      fire(portal, 'ADD', String(item.ID), call);
      return ok(Number(item.ID));
    },
    [`crm.${prefix}.update`]: (params, call, portal) => {
      const id = entityId(params);
      const fields = entityFields(params);
      const done = store(portal).update(id, fields, call.userId);
      if (!done) throw crmError(notFound.change);
      opts.afterUpdate?.(portal, done.item, fields);
      // Not saved (nothing changed, crm-store.ts `savedOnlyWhenChanged`): no event, and the
      // answer is true all the same.
      if (done.saved) fire(portal, 'UPDATE', id, call);
      return ok(true);
    },
    [`crm.${prefix}.delete`]: (params, call, portal) => {
      const id = entityId(params);
      if (!store(portal).remove(id)) throw crmError(notFound.delete ?? notFound.change);
      fire(portal, 'DELETE', id, call);
      return ok(true);
    },
  };
}

/**
 * What crm.activity.add refuses (CORE crm classes/general/restservice.php
 * `CCrmActivityRestProxy::innerAdd`): a TYPE_ID other than a meeting, call or e-mail, and
 * no communication with a VALUE (COMMUNICATIONS is required; DOCS:api-reference/crm/
 * timeline/activities/activity-base/crm-activity-add.md). An activity is bound to its owner
 * (OWNER_TYPE_ID, OWNER_ID), which the emulator does not check.
 */
function checkActivity(fields: Record<string, unknown>): void {
  const type = String(fields['TYPE_ID'] ?? '');
  if (!/^\d+$/.test(type) || Number(type) <= 0 || Number(type) > 6) {
    throw crmError('The field TYPE_ID is not defined or invalid.');
  }
  if (!ACTIVITY_TYPES.includes(type)) {
    throw crmError(`The activity type "${type} is not supported in current context".`);
  }
  const comms = fields['COMMUNICATIONS'];
  const values = Array.isArray(comms)
    ? comms.filter((c) => isRecord(c) && String(c['VALUE'] ?? '') !== '')
    : [];
  if (values.length === 0) throw crmError('The field COMMUNICATIONS is not defined or invalid.');
}

const TIMELINE_OWNERS: Record<string, (p: PortalState) => EntityStore> = {
  deal: (p) => p.deals,
  lead: (p) => p.leads,
  contact: (p) => p.contacts,
  company: (p) => p.companies,
  quote: (p) => p.quotes,
};

/**
 * Whether the comment's owner exists: a deal, lead, contact, company or quote, a
 * `dynamic_<type>` item or a `smart_invoice` (an item of type 31). ENTITY_TYPE is an owner
 * type's name in any case (CORE crm lib/controller/timeline/comment.php `fetchFieldsToAdd`
 * → CCrmOwnerType::ResolveID, crm classes/general/crm_owner_type.php: QUOTE, SMART_INVOICE,
 * DYNAMIC_<id>).
 */
/** An owner type id as the name timelineOwnerExists takes (CCrmOwnerType ids). */
function ownerTypeName(typeId: number): string {
  const named: Record<number, string> = {
    1: 'lead',
    2: 'deal',
    3: 'contact',
    4: 'company',
    7: 'quote',
  };
  if (named[typeId]) return named[typeId];
  if (typeId === 31) return 'smart_invoice';
  return typeId >= 128 ? `dynamic_${typeId}` : '';
}

function timelineOwnerExists(portal: PortalState, entityType: string, id: string): boolean {
  const dynamic = /^dynamic_(\d+)$/.exec(entityType);
  if (dynamic) return portal.items.get(Number(dynamic[1]), id) !== undefined;
  if (entityType === 'smart_invoice') return portal.items.get(31, id) !== undefined;
  return TIMELINE_OWNERS[entityType]?.(portal).get(id) !== undefined;
}

/**
 * DOCS:api-reference/crm/timeline/comments/crm-timeline-comment-add.md: `fields` only in
 * lower case ("Starting from crm version 23.100.0, the method only accepts parameters with the
 * key `fields` in lowercase. Other undocumented variants (Fields, FIELDS, arFields) are not
 * accepted"), so another spelling reads as no fields; `100` "Required fields are not
 * provided" (no `fields` object), `OWNER_NOT_FOUND`, `INVALID_ARG_VALUE` from its error table;
 * ENTITY_TYPE `lead`, `deal`, `contact`, `company`, `order`, `dynamic_<n>` and the other
 * owner type names (the emulated portal holds no orders, so those owners are never found).
 */
const timelineCommentAdd: MethodHandler = (params, call, portal) => {
  const fields = Object.hasOwn(params, 'fields') ? params.fields : undefined;
  if (!isRecord(fields)) throw new RestError(400, '100', 'Required fields are not provided');
  // The fields by their exact names, ENTITY_TYPE_ID before ENTITY_TYPE, the author the caller
  // (CORE crm lib/controller/timeline/comment.php `fetchFieldsToAdd`); no owner id or type:
  // OWNER_NOT_FOUND (`assertValidOwner`); an empty text: "Empty comment message"
  // (`assertValidCommentContent`). An owner that is not there is refused as not found too
  // (the core asks the user's permission on it there: unsure what it answers).
  const own = (k: string): unknown => (Object.hasOwn(fields, k) ? fields[k] : undefined);
  const typeId = Number(own('ENTITY_TYPE_ID') ?? 0);
  const entityType =
    typeId > 0 ? ownerTypeName(typeId) : String(own('ENTITY_TYPE') ?? '').toLowerCase();
  const entityIdValue = String(own('ENTITY_ID') ?? '');
  const comment = String(own('COMMENT') ?? '').trim();
  if (
    !(Number(entityIdValue) > 0) ||
    !entityType ||
    !timelineOwnerExists(portal, entityType, entityIdValue)
  ) {
    throw new RestError(400, 'OWNER_NOT_FOUND', 'Owner of the item not found');
  }
  if (comment === '') throw new RestError(400, 'INVALID_ARG_VALUE', 'Empty comment message');
  const id = String(portal.timeline.length + 1);
  portal.timeline.push({
    ID: id,
    ENTITY_ID: entityIdValue,
    ENTITY_TYPE: entityType,
    COMMENT: comment,
    AUTHOR_ID: String(call.userId),
    CREATED: formatBitrixDate(portal.ctx.now()),
  });
  fireInBackground(
    portal,
    'ONCRMTIMELINECOMMENTADD',
    { FIELDS: { ID: id } },
    call.userId,
    restOrigin(call),
  );
  return ok(Number(id));
};

export const METHODS: Readonly<Record<string, MethodHandler>> = {
  ...APP_METHODS,
  ...BINDING_METHODS,
  ...OFFLINE_METHODS,
  ...crmMethods('deal', (p) => p.deals),
  ...crmMethods('lead', (p) => p.leads),
  // A missing activity: get answers an empty 400 (innerGet returns Fetch()'s false with no
  // message, so the RestException has none, code ""; CORE crm classes/general/
  // restservice.php `CCrmActivityRestProxy::innerGet`, rest lib/restexception.php); update
  // and delete name it ("Activity is not found.", innerUpdate / innerDelete).
  ...crmMethods('activity', (p) => p.activities, {
    notFound: { get: '', change: 'Activity is not found.' },
    checkAdd: checkActivity,
    afterAdd: activityMade,
    // New communications bind it anew (the update's owner and theirs, `innerUpdate`); without
    // them its bindings stay, even when its owner changes (crm_activity.php `Update` saves
    // BINDINGS only when given).
    // The owner is the update's or else the current one (`innerUpdate` takes the current
    // OWNER_ID / OWNER_TYPE_ID where the update gives none): the updated record's.
    afterUpdate: (portal, item, fields) => {
      if (Array.isArray(fields['COMMUNICATIONS'])) activityRebound(portal, item, fields);
    },
    // An activity of a REST app's configurable provider (another app's: crm.activity.
    // configurable.add) is read with its own method; crm.activity.list lists it as any other
    // (innerGet / innerGetList, the same file).
    refuseGet: (item) =>
      item['PROVIDER_ID'] === 'CONFIGURABLE_REST_APP'
        ? 'Use crm.activity.configurable.get for this activity provider'
        : undefined,
  }),
  ...crmMethods('contact', (p) => p.contacts),
  ...crmMethods('company', (p) => p.companies),
  // A missing quote (CORE crm classes/general/restservice.php `CCrmQuoteRestProxy`): get
  // answers "Not found" as a deal does (`innerGet`), update "Quote is not found" (`innerUpdate`
  // checks `CCrmQuote::Exists`), delete the item operation's not-found message (crm_quote.php
  // `Delete` → lib/entity/compatibility/adapter/operation.php `doPerformDelete`, lang
  // CRM_TYPE_ITEM_NOT_FOUND, whose English text the mirror lacks: ours is a stand-in).
  ...crmMethods('quote', (p) => p.quotes, {
    notFound: { get: 'Not found', change: 'Quote is not found', delete: 'Item not found' },
  }),
  ...QUOTE_INVOICE_METHODS,
  ...ACTIVITY_BINDING_METHODS,
  'crm.timeline.comment.add': timelineCommentAdd,
  ...ITEM_METHODS,
  ...TASK_METHODS,
  ...METADATA_METHODS,
};
