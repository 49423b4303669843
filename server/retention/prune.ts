import type { Knex } from 'knex';
import type { Deps } from '../deps.js';
import { isSqlite } from '../../db/connect.js';
import { listPortals, type PortalRow } from '../../db/stores/portals.js';
import {
  addCounts,
  autoVacuumMode,
  countAged,
  countPortalRows,
  countPrunable,
  deletePrunableEvents,
  FINAL_STATUSES,
  freePages,
  incrementalVacuum,
  prunableEventIds,
  pruneAged,
  prunePortalRows,
  AGED_TABLES,
  PORTAL_AGED_TABLES,
  type EventSlice,
  type TableCounts,
} from '../../db/stores/retention.js';
import {
  cutoff,
  defaultPolicy,
  effectivePolicy,
  rowCutoff,
  type RetentionPolicy,
} from './policy.js';

/**
 * The least a snapshot stays unseen before retention takes it: a year (or RETENTION_DAYS when
 * longer). A live record's snapshot is what `becomes` compares with; most go sooner, with
 * their record's DELETE event or when an event finds the record gone.
 */
const SNAPSHOT_MIN_AGE_MS = 365 * 86_400_000;

export interface PruneOptions {
  /** Only this portal (its events, replays and test sends); the shared tables are left. */
  portal?: PortalRow;
  /** Count what would go, remove nothing. */
  dryRun?: boolean;
  /** Rows per transaction to start with; it adapts to keep each one short. @default 500 */
  batch?: number;
  /**
   * Awaited between two batches with how long the last one held the database: the server
   * rests in proportion here, and yields to the intake.
   */
  pause?: (heldMs: number) => Promise<void>;
  /** Checked between batches; true stops the prune where it is. */
  stopped?: () => boolean;
}

export interface PortalPrune {
  memberId: string;
  policy: RetentionPolicy;
  tables: TableCounts;
}

export interface PruneReport {
  dryRun: boolean;
  /** Per table, every portal and the shared tables together. */
  tables: TableCounts;
  portals: PortalPrune[];
  /** Rows of deliveries of no known portal and of the shared tables (alert jobs …). */
  shared: TableCounts;
  /** SQLite, incremental auto-vacuum: pages returned to the file system. */
  vacuumedPages?: number;
}

/**
 * How long one batch should take at most. SQLite: the batch holds the only write lock and,
 * through better-sqlite3, the main thread, so it must fit between two deliveries.
 * PostgreSQL: deletes lock only their own rows and run off the main thread.
 */
const TARGET_BATCH_MS = { sqlite: 5, pg: 250 };
const MIN_BATCH = 20;
const MAX_BATCH = 2000;

/** Runs one retention pass, a short transaction per batch (db/README.md#retention). */
export async function prune(deps: Deps, opts: PruneOptions = {}): Promise<PruneReport> {
  const { db, config } = deps;
  const now = deps.clock.now().getTime();
  const dryRun = opts.dryRun === true;
  const pause = opts.pause ?? (() => Promise.resolve());
  const stopped = opts.stopped ?? (() => false);
  let batch = opts.batch ?? 500;
  const target = isSqlite(db) ? TARGET_BATCH_MS.sqlite : TARGET_BATCH_MS.pg;

  /**
   * How long the last transaction held the database, from inside it: the wait for the
   * connection (the intake's turn, on SQLite) is not the batch's cost.
   */
  let heldMs: number | undefined;
  const inTransaction = <T>(work: (trx: Knex.Transaction) => Promise<T>): Promise<T> =>
    db.transaction(async (trx) => {
      const t0 = performance.now();
      try {
        return await work(trx);
      } finally {
        heldMs = performance.now() - t0;
      }
    });

  /** Runs `step` until it removes nothing, adapting the batch size to its duration. */
  const drain = async (step: (limit: number) => Promise<number>): Promise<void> => {
    while (!stopped()) {
      const t0 = performance.now();
      heldMs = undefined;
      const n = await step(batch);
      const ms = heldMs ?? performance.now() - t0;
      if (ms > target * 2) batch = Math.max(MIN_BATCH, Math.floor(batch / 2));
      else if (ms < target / 2 && n >= batch) batch = Math.min(MAX_BATCH, batch * 2);
      if (n === 0) return;
      await pause(ms);
    }
  };

  const pruneSlice = async (slice: EventSlice, into: TableCounts) => {
    if (dryRun) return void addCounts(into, await countPrunable(db, slice));
    await drain(async (limit) => {
      const ids = await prunableEventIds(db, slice, limit);
      if (ids.length) {
        addCounts(into, await inTransaction((trx) => deletePrunableEvents(trx, slice, ids)));
      }
      return ids.length;
    });
  };

  const pruneEventsOf = async (portalId: number | null, policy: RetentionPolicy) => {
    const counts: TableCounts = {};
    for (const status of FINAL_STATUSES) {
      const before = cutoff(policy, status, now);
      if (before !== null) await pruneSlice({ portalId, status, before }, counts);
    }
    return counts;
  };

  const report: PruneReport = { dryRun, tables: {}, portals: [], shared: {} };
  const portals = opts.portal ? [opts.portal] : await listPortals(db);
  const serverBefore = rowCutoff(defaultPolicy(config), now);
  for (const p of portals) {
    if (stopped()) break;
    const policy = await effectivePolicy(db, config, p.member_id);
    const tables = await pruneEventsOf(p.id, policy);
    const before = rowCutoff(policy, now);
    if (before !== null) {
      // A snapshot unseen for a year at least (see prunePortalRows).
      const snapshotsBefore = Math.min(before, now - SNAPSHOT_MIN_AGE_MS);
      if (dryRun) addCounts(tables, await countPortalRows(db, p.id, before, snapshotsBefore));
      else
        await drain(async (limit) => {
          const removed = await prunePortalRows(db, p.id, before, limit, snapshotsBefore);
          addCounts(tables, removed);
          return Object.values(removed).reduce((n, k) => n + k, 0);
        });
      // Kept for less time than the server keeps them: the portal's rows of the aged tables
      // go at its own cut-off (its alert jobs quote its events' errors; the shared pass
      // below goes by the server's figures only).
      if (serverBefore === null || before > serverBefore) {
        for (const name of PORTAL_AGED_TABLES) {
          // A dry run counts here only what the server's pass below would not: the real run
          // removes all of it here first, and the server's pass then finds none of it.
          const notBefore = serverBefore ?? undefined;
          if (dryRun)
            addCounts(tables, { [name]: await countAged(db, name, before, p.id, notBefore) });
          else
            await drain(async (limit) => {
              const n = await pruneAged(db, name, before, limit, p.id);
              addCounts(tables, { [name]: n });
              return n;
            });
        }
      }
    }
    report.portals.push({ memberId: p.member_id, policy, tables });
    addCounts(report.tables, tables);
  }

  if (!opts.portal && !stopped()) {
    const policy = defaultPolicy(config);
    addCounts(report.shared, await pruneEventsOf(null, policy));
    const before = rowCutoff(policy, now);
    if (before !== null) {
      for (const name of AGED_TABLES) {
        if (dryRun) addCounts(report.shared, { [name]: await countAged(db, name, before) });
        else
          await drain(async (limit) => {
            const n = await pruneAged(db, name, before, limit);
            addCounts(report.shared, { [name]: n });
            return n;
          });
      }
    }
    addCounts(report.tables, report.shared);
  }

  if (!dryRun && isSqlite(db) && (await autoVacuumMode(db)) === 2) {
    // Moving pages is far slower per page than deleting rows: the steps start small and
    // follow the same time target as the batches.
    let pages = 0;
    batch = MIN_BATCH;
    await drain(async (limit) => {
      const n = Math.min(await freePages(db), limit);
      if (n === 0) return 0;
      const t0 = performance.now();
      await incrementalVacuum(db, n);
      heldMs = performance.now() - t0;
      pages += n;
      return n;
    });
    report.vacuumedPages = pages;
  }
  return report;
}
