import { fireInBackground, restOrigin } from './event-delivery.js';
import { isRecord } from './http-util.js';
import { param, RestError, type MethodHandler } from './rest-error.js';
import type { PortalState } from './state.js';
import type { CrmItem } from './types.js';

/**
 * The records an activity is bound to (`crm.activity.binding.*`). An activity shows in the
 * card of each: its owner, the contacts, companies and leads of its communications (CORE crm
 * classes/general/restservice.php `CCrmActivityRestProxy::innerAdd`, `internalizeCommunications`
 * puts each communication's ENTITY_TYPE_ID/ENTITY_ID in BINDINGS beside the owner), and any
 * bound later, as telephony binds a client's call to the deal in progress. `crm.activity.get`
 * answers none of them (`innerGet` is the activity table's row).
 */
export interface ActivityBinding {
  entityTypeId: number;
  entityId: number;
}

/** Each activity's bindings, by portal and activity ID. */
const BOUND = new WeakMap<PortalState, Map<string, ActivityBinding[]>>();

const positive = (v: unknown): number => {
  const n = Number(v);
  return Number.isInteger(n) && n > 0 ? n : 0;
};

/**
 * What an activity is bound to when it is made from `fields` (the stored record keeps no
 * COMMUNICATIONS, as crm.activity.get answers none): its owner, then its communications'.
 */
function madeWith(fields: Record<string, unknown>): ActivityBinding[] {
  const out: ActivityBinding[] = [];
  const add = (typeId: unknown, id: unknown) => {
    const entityTypeId = positive(typeId);
    const entityId = positive(id);
    if (!entityTypeId || !entityId) return;
    if (out.some((b) => b.entityTypeId === entityTypeId && b.entityId === entityId)) return;
    out.push({ entityTypeId, entityId });
  };
  add(fields['OWNER_TYPE_ID'], fields['OWNER_ID']);
  // `internalizeCommunications`: a communication without a record is the owner's; one without
  // a value binds nothing unless the activity is a meeting (1) or a task (3); a call's (2) must
  // be a PHONE, an e-mail's (4) an EMAIL, when its TYPE is given.
  const type = String(fields['TYPE_ID'] ?? '');
  const comms = fields['COMMUNICATIONS'];
  for (const c of Array.isArray(comms) ? comms : []) {
    if (!isRecord(c)) continue;
    const value = String(c['VALUE'] ?? '');
    const kind = String(c['TYPE'] ?? '');
    if (value === '' && type !== '1' && type !== '3') continue;
    if (kind !== '' && ((type === '2' && kind !== 'PHONE') || (type === '4' && kind !== 'EMAIL')))
      continue;
    const own = value !== '' && (!positive(c['ENTITY_TYPE_ID']) || !positive(c['ENTITY_ID']));
    if (own) add(fields['OWNER_TYPE_ID'], fields['OWNER_ID']);
    else add(c['ENTITY_TYPE_ID'], c['ENTITY_ID']);
  }
  return out;
}

const boundOf = (portal: PortalState): Map<string, ActivityBinding[]> => {
  const map = BOUND.get(portal) ?? new Map<string, ActivityBinding[]>();
  BOUND.set(portal, map);
  return map;
};

/** Keeps what a new activity is bound to, from the fields it was made with. */
export function activityMade(
  portal: PortalState,
  activity: CrmItem,
  fields: Record<string, unknown>,
): void {
  boundOf(portal).set(activity.ID, madeWith(fields));
}

/**
 * An update with COMMUNICATIONS binds the activity anew: its owner as it is now (the update's
 * fields if they move it, else the stored one, `innerUpdate`) and the new communications'.
 */
export function activityRebound(
  portal: PortalState,
  activity: CrmItem,
  fields: Record<string, unknown>,
): void {
  activityMade(portal, activity, {
    ...fields,
    TYPE_ID: activity['TYPE_ID'],
    OWNER_TYPE_ID: activity['OWNER_TYPE_ID'],
    OWNER_ID: activity['OWNER_ID'],
  });
}

/** The activity's bindings now (its owner's alone for one made without activityMade). */
export function activityBindings(portal: PortalState, activity: CrmItem): ActivityBinding[] {
  return BOUND.get(portal)?.get(activity.ID) ?? madeWith(activity);
}

/** Binds the activity to one more record; false when it already was. */
export function bindActivity(
  portal: PortalState,
  activity: CrmItem,
  binding: ActivityBinding,
): boolean {
  const now = activityBindings(portal, activity);
  if (now.some((b) => b.entityTypeId === binding.entityTypeId && b.entityId === binding.entityId))
    return false;
  boundOf(portal).set(activity.ID, [...now, binding]);
  return true;
}

/**
 * CORE crm/lib/controller/activity/binding.php: `listAction` answers `[{entityTypeId,
 * entityId}]` (integers; DOCS rest_help crm_activity_binding_list), a missing activity a
 * NOT_FOUND error (`doesActivityExist`, lang CRM_TYPE_ITEM_NOT_FOUND, whose English text the
 * mirror lacks: ours is a stand-in); `addAction` saves them with CCrmActivity::Update, which
 * sends ONCRMACTIVITYUPDATE, and refuses a binding it already has (ACTIVITY_IS_ALREADY_BOUND,
 * its text a stand-in as well). The emulator's user may
 * read and edit every record (`canView`, `canEdit` always hold).
 */
export const ACTIVITY_BINDING_METHODS: Readonly<Record<string, MethodHandler>> = {
  'crm.activity.binding.list': (params, _call, portal) => {
    const activity = portal.activities.get(String(param(params, 'activityId') ?? ''));
    if (!activity) throw new RestError(400, 'NOT_FOUND', 'Item not found');
    return { result: activityBindings(portal, activity) };
  },
  'crm.activity.binding.add': (params, call, portal) => {
    const activity = portal.activities.get(String(param(params, 'activityId') ?? ''));
    if (!activity) throw new RestError(400, 'NOT_FOUND', 'Item not found');
    const binding = {
      entityTypeId: positive(param(params, 'entityTypeId')),
      entityId: positive(param(params, 'entityId')),
    };
    if (!bindActivity(portal, activity, binding))
      throw new RestError(
        400,
        'ACTIVITY_IS_ALREADY_BOUND',
        'The activity is already bound to this item',
      );
    fireInBackground(
      portal,
      'ONCRMACTIVITYUPDATE',
      { FIELDS: { ID: activity.ID } },
      call.userId,
      restOrigin(call),
    );
    return { result: true };
  },
};
