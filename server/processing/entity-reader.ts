import type { Deps } from '../deps.js';
import { BitrixPermanentError } from '../bitrix/errors.js';
import type { PortalRow } from '../../db/stores/portals.js';

export type Entity = Record<string, unknown>;

/** How to read one record of each entity type over REST, and where the record sits in the answer. */
function readCall(
  entityType: string,
  id: string,
): { method: string; params: object; unwrap(r: unknown): Entity | null } | undefined {
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
      return plain('crm.activity.get');
    case 'invoice':
      return plain('crm.invoice.get');
    case 'task':
      return {
        method: 'tasks.task.get',
        params: { taskId: id, select: ['*'] },
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

const isNotFound = (e: unknown) =>
  e instanceof BitrixPermanentError &&
  /not found|NOT_FOUND/i.test(`${e.bitrixCode} ${e.description}`);

export interface EntityReader {
  /**
   * The record as it is now, or null when it no longer exists. A read fetched after
   * `notBefore` (the event's receipt) is reused: it is at least as fresh as the event, so
   * several pending events of one entity share one read.
   */
  read(
    portal: PortalRow,
    entityType: string,
    id: string,
    notBefore: number,
  ): Promise<Entity | null | undefined>;
  /** Forget a cached record (after our own write to it). */
  invalidate(portalId: number, entityType: string, id: string): void;
}

export function createEntityReader(
  deps: Pick<Deps, 'bitrix' | 'clock'>,
  now: () => number = () => deps.clock.now().getTime(),
  maxEntries = 10_000,
): EntityReader {
  const cache = new Map<string, { at: number; value: Entity | null }>();
  const key = (p: number, t: string, id: string) => `${p}:${t}:${id}`;
  return {
    async read(portal, entityType, id, notBefore) {
      const call = readCall(entityType, id);
      if (!call) return undefined;
      const k = key(portal.id, entityType, id);
      const hit = cache.get(k);
      // Strictly after: a read in the same millisecond as the receipt may predate the change.
      if (hit && hit.at > notBefore) return hit.value;
      const fetchedAt = now();
      let value: Entity | null;
      try {
        value = call.unwrap(await deps.bitrix.read(portal, call.method, call.params));
      } catch (e) {
        if (!isNotFound(e)) throw e;
        value = null;
      }
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
      cache.set(k, { at: fetchedAt, value });
      return value;
    },
    invalidate(portalId, entityType, id) {
      cache.delete(key(portalId, entityType, id));
    },
  };
}

/** Entity type and id written by a `bitrix` step, for the loop guard (`crm.deal.update` → deal). */
export function writtenEntity(
  method: string,
  params: Record<string, unknown> | undefined,
): { type: string; id: string } | undefined {
  const m = /^crm\.(deal|lead|contact|company|quote)\.update$/i.exec(method);
  if (m) {
    const id = params?.id ?? params?.ID;
    return id === undefined ? undefined : { type: m[1]!.toLowerCase(), id: String(id) };
  }
  if (/^crm\.item\.update$/i.test(method)) {
    const id = params?.id;
    const typeId = params?.entityTypeId;
    return id === undefined || typeId === undefined
      ? undefined
      : { type: `dynamic:${String(typeId)}`, id: String(id) };
  }
  if (/^tasks\.task\.update$/i.test(method)) {
    const id = params?.taskId;
    return id === undefined ? undefined : { type: 'task', id: String(id) };
  }
  return undefined;
}
