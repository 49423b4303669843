import type { Knex } from 'knex';
import { isSqlite } from '../connect.js';
import { addCounts, deleteEvents, deleteReplayRuns, type TableCounts } from './retention.js';
import { deletePortalDestinations } from './destinations.js';
import { deletePortalRollups, uncountPendingEvents } from './rollups.js';

/** The portal being erased: its row id and member_id. */
export interface ErasedPortal {
  id: number;
  member_id: string;
}

/** One record of a portal (`deal` 42, `dynamic:128` 7). */
export interface ErasedEntity {
  type: string;
  id: string;
}

/**
 * Deletes the portal's events (or one entity's) with everything that belongs to them, a
 * batch per transaction, so the intake is never locked out for long.
 */
export async function eraseEvents(
  db: Knex,
  portal: ErasedPortal,
  entity: ErasedEntity | undefined,
  batch: number,
  keepEventId?: number,
  onErased?: (ids: readonly number[]) => void,
): Promise<TableCounts> {
  const counts: TableCounts = {};
  // events_portal_entity_id (portal_id, entity_id, id) / events_portal_id (portal_id, id)
  const mine = (q: Knex.QueryBuilder) =>
    entity
      ? q
          .where('portal_id', portal.id)
          .where('entity_id', entity.id)
          .where('entity_type', entity.type)
      : q.where('portal_id', portal.id);
  // Deliveries naming the member_id but stored without a portal (rejected before install).
  const strays = (q: Knex.QueryBuilder) =>
    q.whereNull('portal_id').where('member_id', portal.member_id);
  for (const narrow of entity ? [mine] : [mine, strays]) {
    for (;;) {
      const q = narrow(db('events')).orderBy('id').limit(batch);
      if (keepEventId !== undefined) q.whereNot('id', keepEventId);
      const ids = ((await q.pluck('id')) as unknown[]).map(Number);
      if (ids.length === 0) break;
      addCounts(
        counts,
        await db.transaction(async (trx) => {
          await uncountPendingEvents(trx, ids);
          return deleteEvents(trx, ids);
        }),
      );
      onErased?.(ids);
    }
  }
  return counts;
}

/** erased_entities' key for a whole portal's erasure. */
export const ALL_RECORDS: ErasedEntity = { type: '*', id: '*' };

/**
 * Remembers that a record's data (ALL_RECORDS: the portal's) was erased at `at`: a recovery
 * sweep or an offline queue then takes the record's changes made before it as covered
 * (migration 0034), instead of queuing the erased record again.
 */
export async function recordErasure(
  db: Knex,
  portalId: number,
  entity: ErasedEntity,
  at: number,
): Promise<void> {
  await db('erased_entities')
    .insert({ portal_id: portalId, entity_type: entity.type, entity_id: entity.id, erased_at: at })
    .onConflict(['portal_id', 'entity_type', 'entity_id'])
    .merge({ erased_at: at });
}

/**
 * When a record's own data was last erased (`erase --entity`), or null: the deal tab says its
 * events were erased rather than that it has none yet. The whole portal's erasure is left
 * out: a record first seen after it had nothing erased.
 */
export async function erasedAt(
  db: Knex,
  portalId: number,
  entity: ErasedEntity,
): Promise<number | null> {
  const row = (await db('erased_entities')
    .where({ portal_id: portalId, entity_type: entity.type, entity_id: entity.id })
    .first('erased_at')) as { erased_at: number | string } | undefined;
  return row ? Number(row.erased_at) : null;
}

/** What belongs to one record besides its events: its snapshot and the loop guard's writes. */
export async function eraseEntityRows(
  db: Knex,
  portalId: number,
  entity: ErasedEntity,
): Promise<TableCounts> {
  const key = { portal_id: portalId, entity_type: entity.type, entity_id: entity.id };
  return addCounts(
    {},
    {
      entity_snapshots: await db('entity_snapshots').where(key).delete(),
      own_writes: await db('own_writes').where(key).delete(),
      // Links naming the record as an owner ("a call in deal 5"): its card shows nothing more.
      event_owners: await db('event_owners')
        .where({ portal_id: portalId, owner_type: entity.type, owner_id: entity.id })
        .delete(),
      // The rule builder's test sends quote the record they were sent with (their request),
      // and which record that was is not kept: the portal's few (at most 50) all go.
      step_tests: await db('step_tests').where('portal_id', portalId).delete(),
    },
  );
}

/** Sessions opened by users of the portal (the session JSON names the member_id). */
async function eraseSessions(db: Knex, memberId: string): Promise<number> {
  const rows = (await db('sessions')
    .where('sess', 'like', `%${memberId}%`)
    .select('sid', 'sess')) as Array<{ sid: string; sess: string }>;
  const sids = rows
    .filter((r) => {
      try {
        return (JSON.parse(r.sess) as { b24?: { memberId?: unknown } }).b24?.memberId === memberId;
      } catch {
        return false;
      }
    })
    .map((r) => r.sid);
  return sids.length ? db('sessions').whereIn('sid', sids).delete() : 0;
}

/**
 * Loss-recovery sweeps: those of this portal alone go; a sweep of every portal keeps its
 * row but loses this portal's line in its per-portal JSON.
 */
async function eraseRecoveryGaps(db: Knex, memberId: string): Promise<number> {
  let n = await db('recovery_gaps').where('member_id', memberId).delete();
  const rows = (await db('recovery_gaps')
    .where('portals', 'like', `%${memberId}%`)
    .select('id', 'portals')) as Array<{ id: number; portals: string | null }>;
  for (const r of rows) {
    let list: Array<{ memberId?: unknown }>;
    try {
      list = JSON.parse(r.portals ?? '[]') as Array<{ memberId?: unknown }>;
    } catch {
      continue;
    }
    const kept = list.filter((p) => p.memberId !== memberId);
    if (kept.length === list.length) continue;
    await db('recovery_gaps')
      .where('id', r.id)
      .update({ portals: JSON.stringify(kept) });
    n++;
  }
  return n;
}

/**
 * The portal's personal data besides its events: snapshots of its records, the loop
 * guard's writes, alert jobs, UI replays, SLA breaches, the rule builder's test sends,
 * sessions and its lines in the recovery sweeps. The installation itself (portal row, tokens, settings) stays.
 */
export async function erasePortalRecords(
  db: Knex,
  portal: ErasedPortal,
  batch: number,
  keepEventId?: number,
): Promise<TableCounts> {
  const counts: TableCounts = {};
  // The running uninstall's own job stays for the last transaction (erasePortalInstallation).
  const portalJobs = () => {
    const q = db('jobs').where('portal_id', portal.id);
    if (keepEventId !== undefined) {
      q.where((w) => w.whereNull('event_id').orWhereNot('event_id', keepEventId));
    }
    return q;
  };
  for (;;) {
    const runs = (await db('replay_runs')
      .where('portal_id', portal.id)
      .limit(batch)
      .pluck('id')) as number[];
    if (runs.length === 0) break;
    addCounts(counts, await deleteReplayRuns(db, runs));
  }
  return addCounts(counts, {
    jobs: await portalJobs().delete(),
    entity_snapshots: await db('entity_snapshots').where('portal_id', portal.id).delete(),
    own_writes: await db('own_writes').where('portal_id', portal.id).delete(),
    step_tests: await db('step_tests').where('portal_id', portal.id).delete(),
    // Every breach names both (db/stores/sla.ts breachRow); member_id has the index
    // (`sla_breaches_member`), and `portal_id = ? or member_id = ?` read the whole table.
    sla_breaches: await db('sla_breaches').where('member_id', portal.member_id).delete(),
    sessions: await eraseSessions(db, portal.member_id),
    recovery_gaps: await eraseRecoveryGaps(db, portal.member_id),
  });
}

/** Every table of the database with its column names (sqlite_master / information_schema). */
export async function tableColumns(db: Knex): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  if (isSqlite(db)) {
    const tables = (await db('sqlite_master')
      .where('type', 'table')
      .whereNot('name', 'like', 'sqlite_%')
      .pluck('name')) as string[];
    for (const t of tables) {
      const cols = (await db.raw(`pragma table_info(${JSON.stringify(t)})`)) as Array<{
        name: string;
      }>;
      out.set(
        t,
        cols.map((c) => c.name),
      );
    }
    return out;
  }
  const rows = (await db('information_schema.columns')
    .whereRaw('table_schema = current_schema()')
    .orderBy(['table_name', 'ordinal_position'])
    .select('table_name', 'column_name')) as Array<{ table_name: string; column_name: string }>;
  for (const r of rows) out.set(r.table_name, [...(out.get(r.table_name) ?? []), r.column_name]);
  return out;
}

/**
 * The tables this file erases a portal's rows from by name, each through an index (a
 * CLEAN's last transaction holds the write lock while every portal waits). A table added
 * with a `portal_id` or `member_id` column belongs here, with its own indexed delete:
 * test/integration/erasure-plans.test.ts fails until it is.
 */
export const ERASED_BY_NAME: ReadonlySet<string> = new Set([
  'events',
  'jobs',
  'action_runs',
  'rule_matches',
  'replay_run_events',
  'event_owners',
  'replay_runs',
  'entity_snapshots',
  'own_writes',
  'step_tests',
  'sla_breaches',
  'sessions',
  'recovery_gaps',
  'settings',
  'alert_state',
  'rate_buckets',
  'destinations',
  'telegram_chats',
  'telegram_chat_links',
  'telegram_link_codes',
  'rollups',
  'user_token_renewals',
  'erased_entities',
  'channel_usage',
  'offline_reservations',
]);

/**
 * Rows of the portal in tables this file does not name (added by later work without being
 * named above): any table with a `portal_id` or `member_id` column loses the portal's rows,
 * one column at a time (`portal_id = ? or member_id = ?` read the whole table even where
 * each column had an index).
 */
async function sweepPortalColumns(trx: Knex, portal: ErasedPortal): Promise<TableCounts> {
  const counts: TableCounts = {};
  for (const [table, cols] of await tableColumns(trx)) {
    if (table === 'portals' || ERASED_BY_NAME.has(table)) continue;
    if (cols.includes('portal_id')) {
      addCounts(counts, { [table]: await trx(table).where('portal_id', portal.id).delete() });
    }
    if (cols.includes('member_id')) {
      addCounts(counts, {
        [table]: await trx(table).where('member_id', portal.member_id).delete(),
      });
    }
  }
  return counts;
}

/**
 * The keys of a portal's alert conditions (server/alerts: checks.ts, monitor-context.ts,
 * sla-check.ts, sla.ts `lateStateKey`). Matched exactly: `like '%:<member_id>'` read `_` as
 * any character (and, on SQLite, any case), so cleaning portal `acme_1` reset `acmeX1`'s.
 */
const PORTAL_ALERT_KINDS = [
  'backlog',
  'failed',
  'reauth',
  'drift',
  'sla',
  'sla-late',
  'destinations',
];

/** What a CLEAN uninstall keeps of the portal row: enough to list it as uninstalled. */
const TOMBSTONE_COLUMNS = new Set([
  'id',
  'member_id',
  'domain',
  'status',
  'auth_mode',
  'installed_at',
  'uninstalled_at',
  'updated_at',
]);

/**
 * The portal row becomes a tombstone: uninstalled portals stay listed by
 * `b24hooks portals`, so its member_id, domain and status stay; every other column (tokens,
 * application token digest, webhook URL, scopes, endpoints, bound events, and any column a
 * later migration adds) is cleared.
 */
async function tombstonePortal(trx: Knex, portal: ErasedPortal): Promise<number> {
  const cols = (await tableColumns(trx)).get('portals') ?? [];
  const cleared: Record<string, null> = {};
  for (const c of cols) if (!TOMBSTONE_COLUMNS.has(c)) cleared[c] = null;
  return trx('portals')
    .where('id', portal.id)
    .update({ ...cleared, status: 'uninstalled' });
}

/**
 * The installation itself, last of a CLEAN uninstall: settings (rules, events, alert
 * channels, retention), alert state, the shared REST budget, and the portal row's tokens
 * (the row stays as a tombstone). Run after erasePortalRecords and eraseEvents (foreign keys point at the portal).
 */
export async function erasePortalInstallation(
  db: Knex,
  portal: ErasedPortal,
): Promise<TableCounts> {
  return db.transaction(async (trx) =>
    addCounts(
      // Rows that may have been written since the batches above ran.
      await deleteEvents(
        trx,
        ((await trx('events').where('portal_id', portal.id).pluck('id')) as unknown[]).map(Number),
      ),
      {
        jobs: await trx('jobs').where('portal_id', portal.id).delete(),
        settings: await trx('settings').where('scope', portal.member_id).delete(),
        alert_state:
          (await trx('alert_state').where('member_id', portal.member_id).delete()) +
          (await trx('alert_state')
            .whereIn(
              'key',
              PORTAL_ALERT_KINDS.map((k) => `${k}:${portal.member_id}`),
            )
            .delete()),
        rollups: await deletePortalRollups(trx, portal.id),
        erased_entities: await trx('erased_entities').where('portal_id', portal.id).delete(),
        channel_usage: await trx('channel_usage').where('portal_id', portal.id).delete(),
        offline_reservations: await trx('offline_reservations')
          .where('portal_id', portal.id)
          .delete(),
        user_token_renewals: await trx('user_token_renewals')
          .where('member_id', portal.member_id)
          .delete(),
        rate_buckets: await trx('rate_buckets').where('key', portal.member_id).delete(),
        destinations: await deletePortalDestinations(trx, portal.id),
        telegram_chats: await trx('telegram_chats').where('portal_id', portal.id).delete(),
        telegram_chat_links: await trx('telegram_chat_links')
          .where('portal_id', portal.id)
          .delete(),
        telegram_link_codes: await trx('telegram_link_codes')
          .where('portal_id', portal.id)
          .delete(),
      },
      await sweepPortalColumns(trx, portal),
      // The portal row stays as a tombstone with nothing but its name, domain and status:
      // uninstalled portals stay listed by `b24hooks portals`. Every token,
      // secret and install detail goes.
      { portals: await tombstonePortal(trx, portal) },
    ),
  );
}
