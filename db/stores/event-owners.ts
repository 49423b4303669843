import type { Knex } from 'knex';

/** One record an event's record belongs to (migration 0037). */
export interface OwnerRef {
  type: string;
  id: string;
}

/** Links an event to the records its record belongs to (a second link is a no-op). */
export async function linkEventOwners(
  db: Knex,
  portalId: number,
  eventId: number,
  owners: readonly OwnerRef[],
): Promise<void> {
  if (owners.length === 0) return;
  await db('event_owners')
    .insert(
      owners.map((o) => ({
        event_id: eventId,
        portal_id: portalId,
        owner_type: o.type,
        owner_id: o.id,
      })),
    )
    .onConflict(['event_id', 'owner_type', 'owner_id'])
    .ignore();
}

/**
 * The owners of the newest earlier event of the same record that has any: what a delete
 * event (Bitrix24 sends the ID of a record that is gone) or a record deleted before it was
 * read belonged to. Walks the record's events newest first by `events_portal_entity_id`.
 */
export async function ownersOfEarlierEvent(
  db: Knex,
  portalId: number,
  entityType: string,
  entityId: string,
  beforeEventId: number,
): Promise<OwnerRef[]> {
  const rows = (await db('event_owners')
    .join('events', 'events.id', 'event_owners.event_id')
    .where('events.portal_id', portalId)
    .where('events.entity_id', entityId)
    .where('events.entity_type', entityType)
    .where('events.id', '<', beforeEventId)
    .orderBy('events.id', 'desc')
    .limit(20)
    .select('event_owners.event_id', 'owner_type', 'owner_id')) as Array<{
    event_id: number | string;
    owner_type: string;
    owner_id: string;
  }>;
  const newest = rows[0]?.event_id;
  return rows
    .filter((r) => String(r.event_id) === String(newest))
    .map((r) => ({ type: r.owner_type, id: String(r.owner_id) }));
}

/** The newest `limit` events linked to one owner record, newest first (ids). */
export async function eventIdsOwnedBy(
  db: Knex,
  portalId: number,
  owner: OwnerRef,
  limit: number,
): Promise<number[]> {
  const ids = (await db('event_owners')
    .where({ portal_id: portalId, owner_type: owner.type, owner_id: owner.id })
    .orderBy('event_id', 'desc')
    .limit(limit)
    .pluck('event_id')) as Array<number | string>;
  return ids.map(Number);
}
