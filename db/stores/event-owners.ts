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
 * The owners of the record's last earlier event that was read (evaluated: a record gone
 * before its read is not): what a delete event (Bitrix24 sends the ID of a record that is
 * gone), a record deleted before it was read, or one that could not be read belonged to.
 * None when that event had none (a task unbound from its deal, then deleted). Walks the
 * record's events newest first by `events_portal_entity_id`.
 */
export async function ownersOfEarlierEvent(
  db: Knex,
  portalId: number,
  entityType: string,
  entityId: string,
  beforeEventId: number,
): Promise<OwnerRef[]> {
  const prior = (await db('events')
    .where({ portal_id: portalId, entity_id: entityId, entity_type: entityType })
    .where('id', '<', beforeEventId)
    .whereNotNull('evaluated_at')
    .orderBy('id', 'desc')
    .first('id')) as { id: number | string } | undefined;
  if (!prior) return [];
  const rows = (await db('event_owners')
    .where('event_id', prior.id)
    .select('owner_type', 'owner_id')) as Array<{ owner_type: string; owner_id: string }>;
  return rows.map((r) => ({ type: r.owner_type, id: String(r.owner_id) }));
}

/** Whether the event is linked to any owner already. */
export async function hasEventOwners(db: Knex, eventId: number): Promise<boolean> {
  return (await db('event_owners').where('event_id', eventId).first('event_id')) !== undefined;
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
