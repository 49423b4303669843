import type { Knex } from 'knex';
import { PRUNE_INDEX_PREDICATE } from '../migrations/0014-retention.js';
import { isSqlite } from '../connect.js';

/** Final statuses retention prunes; the backlog statuses are never pruned. */
export const FINAL_STATUSES = ['processed', 'skipped', 'rejected', 'failed'] as const;
export type FinalStatus = (typeof FINAL_STATUSES)[number];

/** Rows removed (or that would be removed) per table. */
export type TableCounts = Record<string, number>;

/** Adds the counts of `more` to `into` (tables with 0 rows are left out); returns `into`. */
export function addCounts(into: TableCounts, ...more: TableCounts[]): TableCounts {
  for (const counts of more) {
    for (const [table, n] of Object.entries(counts)) {
      if (n > 0) into[table] = (into[table] ?? 0) + n;
    }
  }
  return into;
}

/**
 * Tables whose rows belong to one event, children before the event itself (foreign keys).
 * `entity_snapshots.event_id` and `own_writes.consumed_by_event_id` only remember an event:
 * those rows are pruned by their own age.
 */
const EVENT_CHILDREN = [
  'jobs',
  'action_runs',
  'rule_matches',
  'replay_run_events',
  'sla_breaches',
  'event_owners',
] as const;

/** `count(*)` of a query, as a number on either database. */
export async function countRows(q: Knex.QueryBuilder): Promise<number> {
  const [r] = (await q.count({ n: '*' })) as Array<{ n: unknown }>;
  return Number(r?.n ?? 0);
}

/** One group of events retention looks at: a portal (null: deliveries of no known portal). */
export interface EventSlice {
  portalId: number | null;
  status: FinalStatus;
  /** Events received before this (ms) go. */
  before: number;
}

/**
 * The events of a slice, through the partial `events_prune` index (migration 0014, whose
 * predicate is repeated so SQLite can use it): a range, never a scan. Events that still have
 * a job to run (a replay queued) are left for later.
 */
function sliceQuery(db: Knex, s: EventSlice): Knex.QueryBuilder {
  const q = db('events').whereRaw(PRUNE_INDEX_PREDICATE);
  if (s.portalId === null) q.whereNull('portal_id');
  else q.where('portal_id', s.portalId);
  return q
    .where('status', s.status)
    .where('received_at', '<', s.before)
    .whereNotExists(
      db('jobs')
        .select(db.raw('1'))
        .whereRaw('jobs.event_id = events.id')
        .whereIn('jobs.status', ['pending', 'running']),
    );
}

export async function prunableEventIds(
  db: Knex,
  slice: EventSlice,
  limit: number,
): Promise<number[]> {
  const ids = (await sliceQuery(db, slice).limit(limit).pluck('id')) as Array<number | string>;
  return ids.map(Number);
}

/**
 * Deletes the events of `ids` (read by prunableEventIds) that are still prunable, with
 * everything that belongs to them. Run it in the batch's transaction: between the read and
 * this transaction a replay may have queued some of them again (back in the backlog with a
 * pending job), and those stay.
 */
export async function deletePrunableEvents(
  trx: Knex,
  slice: EventSlice,
  ids: readonly number[],
): Promise<TableCounts> {
  if (ids.length === 0) return {};
  const q = sliceQuery(trx, slice).whereIn('id', ids);
  if (!isSqlite(trx)) q.forUpdate();
  const still = ((await q.pluck('id')) as Array<number | string>).map(Number);
  return deleteEvents(trx, still);
}

/** What pruning a slice would remove, per table (for `prune --dry-run`). */
export async function countPrunable(db: Knex, slice: EventSlice): Promise<TableCounts> {
  const ids = () => sliceQuery(db, slice).select('id');
  const counts: TableCounts = {};
  counts.events = await countRows(sliceQuery(db, slice));
  if (counts.events === 0) return {};
  for (const table of EVENT_CHILDREN) {
    counts[table] = await countRows(db(table).whereIn('event_id', ids()));
  }
  return addCounts({}, counts);
}

/**
 * Deletes these events and every row that belongs to them, in foreign-key order. Run it in
 * a transaction so an event never loses half of its rows.
 */
export async function deleteEvents(trx: Knex, ids: readonly number[]): Promise<TableCounts> {
  const counts: TableCounts = {};
  if (ids.length === 0) return counts;
  for (const table of EVENT_CHILDREN) {
    counts[table] = await trx(table).whereIn('event_id', ids).delete();
  }
  counts.events = await trx('events').whereIn('id', ids).delete();
  return addCounts({}, counts);
}

/** Another growing table, pruned by age a batch at a time (`key in (… limit n)`). */
interface AgedTable {
  table: string;
  /** The age column. */
  column: string;
  /** The primary key. @default ['id'] */
  key?: string[];
  where?: (q: Knex.QueryBuilder) => void;
  /** One portal's rows (its shorter retention); absent: the table is the server's alone. */
  ofPortal?: (q: Knex.QueryBuilder, portalId: number) => void;
}

const AGED: Record<
  | 'jobs'
  | 'own_writes'
  | 'recovery_gaps'
  | 'destinations'
  | 'telegram_link_codes'
  | 'channel_usage'
  | 'offline_reservations',
  AgedTable
> = {
  // Alert jobs (no event): done or dead ones, through the partial `jobs_eventless` index.
  jobs: {
    table: 'jobs',
    column: 'updated_at',
    where: (q) => q.whereRaw('event_id is null').whereIn('status', ['done', 'dead']),
    ofPortal: (q, id) => q.where('portal_id', id),
  },
  // Not pruned at a portal's shorter figure: the loop guard needs a write until its echo is
  // processed, which a paused portal's backlog may hold back for days (ids and rule names,
  // nothing of the record's data).
  own_writes: { table: 'own_writes', column: 'written_at' },
  recovery_gaps: {
    table: 'recovery_gaps',
    column: 'sweep_started_at',
    where: (q) => q.whereNot('status', 'running'),
  },
  // Breakers closed and untouched since the cut-off: no row is the same closed breaker, so
  // only the failure count and the last error (which may quote an event's data) go. Open ones
  // stay: jobs may wait for them. Index `destinations_aged`.
  destinations: {
    table: 'destinations',
    column: 'updated_at',
    key: ['key'],
    where: (q) => q.where('state', 'closed'),
    // A portal's own http steps' hosts (`http:<host>#<portal id>`, destinations.ts).
    ofPortal: (q, id) => q.where('key', 'like', `%#${id}`),
  },
  // Codes nobody typed back before they expired (index `telegram_link_codes_expires`).
  telegram_link_codes: {
    table: 'telegram_link_codes',
    column: 'expires_at',
    key: ['portal_id', 'chat_id'],
    ofPortal: (q, id) => q.where('portal_id', id),
  },
  // Past days' message counts (PORTAL_MESSAGES_PER_DAY; index `channel_usage_day`).
  channel_usage: {
    table: 'channel_usage',
    column: 'day_start',
    key: ['portal_id', 'channel', 'day_start'],
    ofPortal: (q, id) => q.where('portal_id', id),
  },
  // Offline batches a drain never settled, every drain since failing too (a portal that
  // lost the extended mode leaves its last ones); index `offline_reservations_reserved`.
  offline_reservations: {
    table: 'offline_reservations',
    column: 'reserved_at',
    key: ['portal_id', 'process_id'],
    ofPortal: (q, id) => q.where('portal_id', id),
  },
};
export type AgedTableName = keyof typeof AGED;
export const AGED_TABLES = Object.keys(AGED) as AgedTableName[];

function agedQuery(
  db: Knex,
  name: AgedTableName,
  before: number,
  portalId?: number,
): Knex.QueryBuilder {
  const t = AGED[name];
  const q = db(t.table).where(t.column, '<', before);
  t.where?.(q);
  if (portalId !== undefined) t.ofPortal?.(q, portalId);
  return q;
}

/**
 * The aged tables that hold rows of one portal (its alert jobs, which quote its events'
 * errors; the loop guard's writes; its own http destinations' last errors; its Telegram link
 * codes): a portal that keeps its data for less time than the server prunes these too.
 */
export const PORTAL_AGED_TABLES = (Object.keys(AGED) as AgedTableName[]).filter(
  (n) => AGED[n].ofPortal !== undefined,
);

export async function pruneAged(
  db: Knex,
  name: AgedTableName,
  before: number,
  limit: number,
  portalId?: number,
): Promise<number> {
  const key = AGED[name].key ?? ['id'];
  const rows = (await agedQuery(db, name, before, portalId).limit(limit).select(key)) as Array<
    Record<string, unknown>
  >;
  if (rows.length === 0) return 0;
  // The age condition again: a row written since the read (a breaker's new failure) stays.
  const q = agedQuery(db, name, before, portalId);
  if (key.length === 1) q.whereIn(key[0]!, rows.map((r) => r[key[0]!]) as Array<string | number>);
  else q.whereIn(key, rows.map((r) => key.map((k) => r[k])) as Array<Array<string | number>>);
  return q.delete();
}

export async function countAged(
  db: Knex,
  name: AgedTableName,
  before: number,
  portalId?: number,
  /** Rows from this time on only: older ones are counted by the server's pass. */
  notBefore?: number,
): Promise<number> {
  const q = agedQuery(db, name, before, portalId);
  if (notBefore !== undefined) q.where(AGED[name].column, '>=', notBefore);
  return countRows(q);
}

/**
 * A portal's rows aged by their own date: UI replays made before `before`
 * (`replay_runs_portal_created`) and the rule builder's test sends. Its snapshots only at
 * `snapshotsBefore`, a year at least: a snapshot is a live record's last known watched
 * values, which a later `becomes` compares with (pruned after a month unseen, a deal then won
 * fired nothing: "earlier value unknown"). A record's snapshot goes with its DELETE event, or
 * when an event finds the record gone; the year is for records deleted unseen.
 */
const olderThan = (
  db: Knex,
  table: 'replay_runs' | 'step_tests' | 'entity_snapshots',
  portalId: number,
  before: number,
) =>
  db(table)
    .where('portal_id', portalId)
    .where(table === 'entity_snapshots' ? 'updated_at' : 'created_at', '<', before);

/** Removes up to `limit` replays (with their event lists), test sends and snapshots of a portal. */
export async function prunePortalRows(
  db: Knex,
  portalId: number,
  before: number,
  limit: number,
  snapshotsBefore: number,
): Promise<TableCounts> {
  const runs = (await olderThan(db, 'replay_runs', portalId, before)
    .limit(limit)
    .pluck('id')) as number[];
  // The rule builder's test sends (at most 50 a portal) quote the record they were sent with.
  const tests = (await olderThan(db, 'step_tests', portalId, before)
    .limit(limit)
    .pluck('id')) as number[];
  const stepTests = tests.length ? await db('step_tests').whereIn('id', tests).delete() : 0;
  // index `entity_snapshots_seen` (portal_id, updated_at)
  const keys = (await olderThan(db, 'entity_snapshots', portalId, snapshotsBefore)
    .limit(limit)
    .select('entity_type', 'entity_id')) as Array<{ entity_type: string; entity_id: string }>;
  const snapshots = keys.length
    ? await olderThan(db, 'entity_snapshots', portalId, snapshotsBefore)
        .whereIn(
          ['entity_type', 'entity_id'],
          keys.map((k) => [k.entity_type, k.entity_id]),
        )
        .delete()
    : 0;
  return addCounts(
    { step_tests: stepTests, entity_snapshots: snapshots },
    await deleteReplayRuns(db, runs),
  );
}

export async function countPortalRows(
  db: Knex,
  portalId: number,
  before: number,
  snapshotsBefore: number,
): Promise<TableCounts> {
  const runs = () => olderThan(db, 'replay_runs', portalId, before).select('id');
  return addCounts(
    {},
    {
      replay_runs: await countRows(olderThan(db, 'replay_runs', portalId, before)),
      step_tests: await countRows(olderThan(db, 'step_tests', portalId, before)),
      replay_run_events: await countRows(db('replay_run_events').whereIn('run_id', runs())),
      entity_snapshots: await countRows(
        olderThan(db, 'entity_snapshots', portalId, snapshotsBefore),
      ),
    },
  );
}

export async function deleteReplayRuns(db: Knex, ids: readonly number[]): Promise<TableCounts> {
  if (ids.length === 0) return {};
  return db.transaction(async (trx) =>
    addCounts(
      {},
      {
        replay_run_events: await trx('replay_run_events').whereIn('run_id', ids).delete(),
        replay_runs: await trx('replay_runs').whereIn('id', ids).delete(),
      },
    ),
  );
}

/** The oldest event still stored (received_at, ms), through the `events_received_at` index. */
export async function oldestEventAt(db: Knex, portalId?: number): Promise<number | null> {
  const q = db('events');
  if (portalId !== undefined) q.where('portal_id', portalId);
  const r = (await q.min({ t: 'received_at' }).first()) as { t: unknown } | undefined;
  return r?.t === null || r?.t === undefined ? null : Number(r.t);
}

export interface DatabaseSize {
  bytes: number;
  /** SQLite: bytes of free pages (reclaimed by a vacuum); null on PostgreSQL. */
  freeBytes: number | null;
}

export async function databaseSize(db: Knex): Promise<DatabaseSize> {
  if (isSqlite(db)) {
    const pragma = async (name: string) => {
      const rows = (await db.raw(`pragma ${name}`)) as Array<Record<string, unknown>>;
      return Number(Object.values(rows[0] ?? {})[0] ?? 0);
    };
    const pageSize = await pragma('page_size');
    return {
      bytes: (await pragma('page_count')) * pageSize,
      freeBytes: (await pragma('freelist_count')) * pageSize,
    };
  }
  const r = (await db.raw('select pg_database_size(current_database()) as n')) as {
    rows: Array<{ n: unknown }>;
  };
  return { bytes: Number(r.rows[0]?.n ?? 0), freeBytes: null };
}

/** SQLite: pages on the file's free list (what an incremental vacuum can give back). */
export async function freePages(db: Knex): Promise<number> {
  const rows = (await db.raw('pragma freelist_count')) as Array<{ freelist_count: number }>;
  return Number(rows[0]?.freelist_count ?? 0);
}

/** SQLite: the file's `auto_vacuum` mode (0 none, 1 full, 2 incremental). */
export async function autoVacuumMode(db: Knex): Promise<number> {
  const rows = (await db.raw('pragma auto_vacuum')) as Array<{ auto_vacuum: number }>;
  return Number(rows[0]?.auto_vacuum ?? 0);
}

/** SQLite: returns up to `pages` free pages to the file system (auto_vacuum=incremental). */
export async function incrementalVacuum(db: Knex, pages: number): Promise<void> {
  // Through knex (a statement's single step) the pragma frees one page per call; `exec`
  // steps it to the end.
  const client = db.client as {
    acquireConnection(): Promise<{ exec(sql: string): unknown }>;
    releaseConnection(c: unknown): Promise<void>;
  };
  const conn = await client.acquireConnection();
  try {
    conn.exec(`pragma incremental_vacuum(${Math.max(1, Math.floor(pages))})`);
  } finally {
    await client.releaseConnection(conn);
  }
}

/**
 * SQLite: rewrites the whole file (VACUUM), switching it to incremental auto-vacuum so later
 * prunes give space back without one. It holds the write lock for the whole rewrite.
 */
export async function fullVacuum(db: Knex): Promise<void> {
  await db.raw('pragma auto_vacuum = incremental');
  await db.raw('vacuum');
}
