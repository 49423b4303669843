import type { Deps } from '../deps.js';
import { BitrixPermanentError } from '../bitrix/errors.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { maxEventId } from '../../db/stores/events.js';
import { ITEM_RECORD_TYPES } from '../lib/entity-types.js';

export type Entity = Record<string, unknown>;

interface ReadCall {
  method: string;
  params: object;
  unwrap(r: unknown): Entity | null;
  /** The answer when the record is gone, besides the usual "not found" ones. */
  gone?(e: unknown): boolean;
  /** Another read to make when this one is refused so (the record is there). */
  instead?(e: unknown): ReadCall | undefined;
}

/**
 * Read as if a record type of its own: an activity's bindings (`{ bindings: [...] }`), read
 * ahead in the same batch as the activity, so they cost no request of their own.
 */
export const ACTIVITY_BINDINGS = 'activity.bindings';

/** How to read one record of each entity type over REST, and where the record sits in the answer. */
function readCall(entityType: string, id: string): ReadCall | undefined {
  const plain = (method: string) => ({
    method,
    params: { id },
    unwrap: (r: unknown) => (r as Entity) ?? null,
  });
  switch (entityType) {
    case 'deal':
      return plain('crm.deal.get');
    case 'lead':
      return plain('crm.lead.get');
    case 'contact':
      return plain('crm.contact.get');
    case 'company':
      return plain('crm.company.get');
    case 'quote':
      return plain('crm.quote.get');
    case 'activity':
      return {
        ...plain('crm.activity.get'),
        gone: emptyRefusal,
        instead: (e) =>
          configurableRefusal(e)
            ? {
                method: 'crm.activity.list',
                params: { filter: { ID: id }, select: ['*'] },
                unwrap: (r) => (Array.isArray(r) ? ((r[0] as Entity | undefined) ?? null) : null),
              }
            : undefined,
      };
    case ACTIVITY_BINDINGS:
      // The records an activity shows in besides its owner: its communications' contacts and
      // companies, the deal a client's call was bound to (CORE crm/lib/controller/activity/
      // binding.php `listAction`: `[{entityTypeId, entityId}]`; crm.activity.get has none).
      return {
        method: 'crm.activity.binding.list',
        params: { activityId: id },
        unwrap: (r) => ({ bindings: Array.isArray(r) ? (r as unknown[]) : [] }),
      };
    case 'invoice':
      return plain('crm.invoice.get');
    case 'task':
      return {
        method: 'tasks.task.get',
        // `*` alone leaves out the user fields (ufCrmTask: the deals and contacts the task is
        // bound to, the portal's own UF_*); a UF_ name beside it brings them all (CORE:
        // tasks/lib/rest/controllers/task.php `prepareSelect`, `isUfExist`).
        params: { taskId: id, select: ['*', 'UF_CRM_TASK'] },
        unwrap: (r) => (r as { task?: Entity } | null)?.task ?? null,
      };
    default: {
      const m = /^dynamic:(\d+)$/.exec(entityType);
      if (!m) return undefined;
      return {
        method: 'crm.item.get',
        params: { entityTypeId: Number(m[1]), id },
        unwrap: (r) => (r as { item?: Entity } | null)?.item ?? null,
      };
    }
  }
}

/**
 * Answers whose words say "not found" about something other than the record: the app
 * removed from the portal (401 APPLICATION_NOT_FOUND, "Application not found", CORE:
 * lib/oauth/auth.php `onRestCheckAuth`) or the method (404 ERROR_METHOD_NOT_FOUND). Read as
 * a deleted record, they ended every waiting event `skipped` ("deal 1 no longer exists").
 */
const NOT_ABOUT_THE_RECORD = new Set(['APPLICATION_NOT_FOUND', 'ERROR_METHOD_NOT_FOUND']);

/**
 * A record gone: crm.deal.get's "Not found" (empty code), crm.item.get's NOT_FOUND. Quotes
 * and old invoices answer alike: crm.quote.get "Not found" (CORE crm classes/general/
 * restservice.php `CCrmQuoteRestProxy::innerGet`), crm.invoice.get "Not found." (crm classes/
 * general/restservice_invoice.php `CCrmInvoiceRestService::getInvoiceDataByID`), both 400
 * with no code. Their "Access denied." (a read the user may not make) is no answer about the
 * record, and stays a failure.
 */
const isNotFound = (e: unknown) =>
  e instanceof BitrixPermanentError &&
  e.httpStatus !== 401 &&
  !NOT_ABOUT_THE_RECORD.has(e.bitrixCode) &&
  /not found|NOT_FOUND/i.test(`${e.bitrixCode} ${e.description}`);

/**
 * crm.activity.get of an activity that is gone (or that the user may not read) answers 400
 * with no error code and no text: CORE crm classes/general/restservice.php
 * `CCrmActivityRestProxy::innerGet` returns the list's `Fetch()`, false for no row, without
 * an error message, and `CCrmRestProxyBase::get` throws a RestException of the empty message
 * list, whose code is "" (rest lib/restexception.php). The page's "Activity is not found"
 * (DOCS api-reference/crm/timeline/activities/activity-base/crm-activity-get.md) comes only
 * when the list itself fails. Read as any other error, every event of a deleted activity
 * failed; our transport names the empty code ERROR.
 */
const emptyRefusal = (e: unknown) =>
  e instanceof BitrixPermanentError &&
  e.httpStatus === 400 &&
  e.bitrixCode === 'ERROR' &&
  e.description === '';

/**
 * crm.activity.get refuses an activity of a REST app's configurable provider ("Use
 * crm.activity.configurable.get for this activity provider": CORE crm classes/general/
 * restservice.php `CCrmActivityRestProxy::innerGet`), which other apps create; crm.activity.list
 * (`innerGetList`, no such check) answers it with the fields get has for any other activity.
 */
const configurableRefusal = (e: unknown) =>
  e instanceof BitrixPermanentError && /crm\.activity\.configurable\.get/.test(e.description);

export interface EntityReader {
  /**
   * The record as it is now, or null when it no longer exists. A read fetched after
   * `eventId` was stored is reused: it is at least as fresh as that event, so
   * several pending events of one entity share one read.
   */
  read(
    portal: PortalRow,
    entityType: string,
    id: string,
    eventId: number,
    notBefore?: number,
  ): Promise<Entity | null | undefined>;
  /**
   * Reads the records not yet fresh in the cache in one `batch` call of up to 50 commands (it
   * counts once against the portal's REST budget; an activity's bindings are a command of
   * their own), so a burst of events for many entities costs a handful of requests instead of
   * one per event. The refs past the 50 commands are left for the next read-ahead.
   */
  prefetch(
    portal: PortalRow,
    refs: ReadonlyArray<{ type: string; id: string }>,
    eventId: number,
    notBefore?: number,
  ): Promise<void>;
  /** The record as `read` would answer it from the cache, without a request; else undefined. */
  cached(
    portal: PortalRow,
    entityType: string,
    id: string,
    eventId: number,
    notBefore?: number,
  ): { value: Entity | null } | undefined;
  /** Forget a cached record (after our own write to it). */
  invalidate(portalId: number, entityType: string, id: string): void;
}

/** Commands in one `batch` call (Bitrix24 takes at most 50). */
const BATCH_MAX = 50;

export function createEntityReader(
  deps: Pick<Deps, 'bitrix' | 'db' | 'clock'>,
  maxEntries = 10_000,
  ttlMs = 60_000,
): EntityReader {
  // A read is tagged with the newest stored event id at the moment it started: it reflects
  // every change whose event was already stored (SQLite commits ids in order). It is also
  // tagged with the time it started (the app's clock): an event is read no earlier than its
  // settling time (`notBefore`, EVENT_SETTLE_MS after its receipt), so that the read shows
  // every change of the event's second, and a read started before that does not serve it.
  type Cached = { mark: number; started: number; at: number; value: Entity | null };
  const cache = new Map<string, Cached>();
  const clockNow = () => deps.clock.now().getTime();
  // Reads also expire: a record cached long ago is not worth trusting or keeping.
  const fresh = (h: Cached | undefined, eventId: number, notBefore: number) =>
    h !== undefined && h.mark >= eventId && h.started >= notBefore && Date.now() - h.at < ttlMs;
  const newestEventId = () => maxEventId(deps.db);
  const key = (p: number, t: string, id: string) => `${p}:${t}:${id}`;
  /** Caches a read, the oldest forgotten first once `maxEntries` are held. */
  const remember = (k: string, entry: Cached) => {
    if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
    cache.set(k, entry);
  };
  const inflight = new Map<number, Promise<void>>();
  return {
    async read(portal, entityType, id, eventId, notBefore = 0) {
      const call = readCall(entityType, id);
      if (!call) return undefined;
      const k = key(portal.id, entityType, id);
      const hit = cache.get(k);
      if (hit && fresh(hit, eventId, notBefore)) return hit.value;
      const started = clockNow();
      const mark = await newestEventId();
      let value: Entity | null;
      try {
        value = call.unwrap(await deps.bitrix.read(portal, call.method, call.params));
      } catch (e) {
        const other = call.instead?.(e);
        if (other) value = other.unwrap(await deps.bitrix.read(portal, other.method, other.params));
        else if (isNotFound(e) || call.gone?.(e)) value = null;
        else throw e;
      }
      remember(k, { mark, started, at: Date.now(), value });
      return value;
    },
    async prefetch(portal, refs, eventId, notBefore = 0) {
      // One read-ahead per portal at a time; the next one then finds most records cached.
      const before = inflight.get(portal.id);
      const mine = (async () => {
        if (before) await before.catch(() => undefined);
        await readAhead(portal, refs, eventId, notBefore);
      })();
      inflight.set(portal.id, mine);
      try {
        await mine;
      } finally {
        if (inflight.get(portal.id) === mine) inflight.delete(portal.id);
      }
    },
    cached(portal, entityType, id, eventId, notBefore = 0) {
      const hit = cache.get(key(portal.id, entityType, id));
      return hit && fresh(hit, eventId, notBefore) ? { value: hit.value } : undefined;
    },
    invalidate(portalId, entityType, id) {
      cache.delete(key(portalId, entityType, id));
    },
  };

  async function readAhead(
    portal: PortalRow,
    refs: ReadonlyArray<{ type: string; id: string }>,
    eventId: number,
    notBefore: number,
  ) {
    const first = refs[0];
    // Only when the record asked for is not fresh: then read it and the next ones in one go.
    if (!first) return;
    const own = cache.get(key(portal.id, first.type, first.id));
    if (fresh(own, eventId, notBefore)) return;
    const todo = new Map<
      string,
      { ref: { type: string; id: string }; call: NonNullable<ReturnType<typeof readCall>> }
    >();
    for (const r of refs) {
      // An activity's bindings go with it, in the same batch.
      const reads = (r.type === 'activity' ? [r, { type: ACTIVITY_BINDINGS, id: r.id }] : [r])
        .map((ref) => ({
          ref,
          call: readCall(ref.type, ref.id),
          k: key(portal.id, ref.type, ref.id),
        }))
        .filter((t) => t.call && !fresh(cache.get(t.k), eventId, notBefore) && !todo.has(t.k));
      // One batch request: the bindings doubled an activity's share, and a read-ahead of 50
      // activities took two requests of the portal's budget, the second one waited for.
      if (todo.size > 0 && todo.size + reads.length > BATCH_MAX) break;
      for (const t of reads) todo.set(t.k, { ref: t.ref, call: t.call! });
    }
    const entries = [...todo.entries()];
    if (entries.length === 0) return;
    const started = clockNow();
    const mark = await newestEventId();
    const cmds: Record<string, readonly [string, object]> = {};
    entries.forEach(([, t], n) => (cmds[`e${n}`] = [t.call.method, t.call.params]));
    const answer = await deps.bitrix.batch(portal, cmds);
    entries.forEach(([k, t], n) => {
      const r = answer.result[`e${n}`];
      // Only what came back is cached; an error (or a missing record) is read alone later,
      // except an activity's bindings: refused, they are kept as not known (null), so each
      // event of a portal that refuses them costs no request of its own.
      const refused = answer.errors[`e${n}`] !== undefined;
      if (r !== undefined && !refused) {
        remember(k, { mark, started, at: Date.now(), value: t.call.unwrap(r) });
      } else if (refused && t.ref.type === ACTIVITY_BINDINGS) {
        remember(k, { mark, started, at: Date.now(), value: null });
      }
    });
  }
}

/**
 * Entity type and id written by a `bitrix` step, for the loop guard (`crm.deal.update` → deal).
 * An add names its record only in its answer, the new ID (CORE crm classes/general/
 * restservice.php `CCrmRestProxyBase::add`; an old invoice's: restservice_invoice.php
 * `CCrmInvoiceRestService::add`): without it, a rule on ONCRMINVOICEADD that adds an invoice
 * would start itself again on every one it makes.
 */
export function writtenEntity(
  method: string,
  params: Record<string, unknown> | undefined,
  response?: unknown,
): { type: string; id: string } | undefined {
  const m = /^crm\.(deal|lead|contact|company|quote|invoice)\.(add|update)$/i.exec(method);
  if (m) {
    const id = m[2]!.toLowerCase() === 'add' ? addedId(response) : (params?.id ?? params?.ID);
    return id === undefined ? undefined : { type: m[1]!.toLowerCase(), id: String(id) };
  }
  const item = /^crm\.item\.(add|update)$/i.exec(method);
  if (item) {
    // crm.item.add answers `{ item: { id, … } }` (DOCS: api-reference/crm/universal/
    // crm-item-add.md), tasks.task.add `{ task: { id, … } }` (tasks/tasks-task-add.md).
    const id = item[1]!.toLowerCase() === 'add' ? nestedId(response, 'item') : params?.id;
    const typeId = params?.entityTypeId;
    if (id === undefined || typeId === undefined) return undefined;
    // A quote or deal saved through crm.item echoes as ONCRMQUOTEUPDATE / ONCRMDEALUPDATE,
    // stored under `quote` / `deal`, not `dynamic:7`.
    return {
      type: ITEM_RECORD_TYPES[String(typeId)] ?? `dynamic:${String(typeId)}`,
      id: String(id),
    };
  }
  const task = /^tasks\.task\.(add|update)$/i.exec(method);
  if (task) {
    const id = task[1]!.toLowerCase() === 'add' ? nestedId(response, 'task') : params?.taskId;
    return id === undefined ? undefined : { type: 'task', id: String(id) };
  }
  return undefined;
}

/** The new record's ID in an add's answer (a number, or its digits), else undefined. */
const addedId = (response: unknown): string | undefined =>
  (typeof response === 'number' && Number.isInteger(response) && response > 0) ||
  (typeof response === 'string' && /^[1-9]\d*$/.test(response))
    ? String(response)
    : undefined;

/** The new record's ID inside an add's answer object (`{ item: { id } }`), else undefined. */
const nestedId = (response: unknown, key: 'item' | 'task'): string | undefined => {
  const inner = (response as Record<string, unknown> | null)?.[key];
  return typeof inner === 'object' && inner !== null
    ? addedId((inner as Record<string, unknown>).id)
    : undefined;
};
