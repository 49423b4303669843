import { forgetPortalSeries } from '../metrics.js';
import type { Deps } from '../deps.js';
import {
  ALL_RECORDS,
  eraseEntityRows,
  eraseEvents,
  erasePortalInstallation,
  erasePortalRecords,
  recordErasure,
  type ErasedEntity,
} from '../../db/stores/erasure.js';
import { forgetDestinationErrors, redactAlertTexts } from '../../db/stores/erasure-texts.js';
import { isSqlite } from '../../db/connect.js';
import {
  addCounts,
  autoVacuumMode,
  freePages,
  incrementalVacuum,
  type TableCounts,
} from '../../db/stores/retention.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { isEntityType } from '../lib/entity-types.js';

/** Events per transaction while erasing. */
const ERASE_BATCH = 500;
/** Free pages given back per step after an erasure (a step moves pages: keep it short). */
const VACUUM_STEP = 20;

/**
 * SQLite: the pages an erasure freed still hold what was on them (secure_delete FAST,
 * db/connect.ts, zeroes deleted rows only inside pages that stay), so a file with
 * incremental auto-vacuum gives every free page back to the file system, a short step at a
 * time with a turn of the event loop between two. An older file without it keeps them until
 * `b24hooks prune --vacuum` (db/README.md#erasure).
 */
async function dropFreedPages(deps: Deps): Promise<void> {
  const { db } = deps;
  if (!isSqlite(db)) return;
  if ((await autoVacuumMode(db)) === 2) {
    for (let n = await freePages(db); n > 0; n = await freePages(db)) {
      await incrementalVacuum(db, Math.min(n, VACUUM_STEP));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  // The zeroed pages are in the WAL; the main file held the erased rows until the next
  // automatic checkpoint, which a quiet server may not reach for a long time (an operator
  // found them with `strings` after an erase). A passive checkpoint copies what no reader
  // still needs, and never waits for one.
  await db.raw('pragma wal_checkpoint(PASSIVE)');
}

/**
 * `deal:42`, `dynamic:128:7` → the entity type as events store it and the id; undefined when
 * the text is not TYPE:ID of a type events are stored under with a record number (`deals:3`
 * erased nothing and said so with exit 0).
 */
export function parseEntityRef(ref: string): ErasedEntity | undefined {
  const i = ref.lastIndexOf(':');
  if (i <= 0 || i === ref.length - 1) return undefined;
  const type = ref.slice(0, i).trim().toLowerCase();
  const id = ref.slice(i + 1).trim();
  // CRM records, tasks and their comments are numbered (every `FIELDS[ID]` in the events'
  // pages of bitrix24/b24restdocs is a positive integer): `deal:42x` erased nothing, exit 0.
  if (!isEntityType(type) || !/^[1-9]\d{0,19}$/.test(id)) return undefined;
  return { type, id };
}

/** What an erasure did: rows removed, and rows kept whose quoted texts it removed. */
export interface Erasure {
  tables: TableCounts;
  redacted: TableCounts;
}

/**
 * A portal's personal data, on request: its events with their jobs, action runs (request
 * and response bodies), matches and replay rows, snapshots, SLA breaches, sessions, and the
 * last errors its destinations quote. The installation stays (tokens, rules, settings), so
 * the app keeps working for the portal.
 */
export async function erasePortalData(
  deps: Deps,
  portal: PortalRow,
  keepEventId?: number,
): Promise<Erasure> {
  const tables = await eraseEvents(deps.db, portal, undefined, ERASE_BATCH, keepEventId);
  addCounts(tables, await erasePortalRecords(deps.db, portal, ERASE_BATCH, keepEventId));
  const redacted = addCounts({}, await forgetDestinationErrors(deps.db, portal));
  await recordErasure(deps.db, portal.id, ALL_RECORDS, deps.clock.now().getTime());
  await dropFreedPages(deps);
  deps.logger.info({ memberId: portal.member_id, tables, redacted }, 'erased portal data');
  return { tables, redacted };
}

/**
 * One record's data: its events (and what belongs to them), its snapshot, our writes to it,
 * the lines of the portal's alert texts that name its events, and the last errors of the
 * portal's destinations (an error may quote the record; which one is not known).
 */
export async function eraseEntityData(
  deps: Deps,
  portal: PortalRow,
  entity: ErasedEntity,
): Promise<Erasure> {
  const erased = new Set<number>();
  const tables = await eraseEvents(deps.db, portal, entity, ERASE_BATCH, undefined, (ids) => {
    for (const id of ids) erased.add(id);
  });
  addCounts(tables, await eraseEntityRows(deps.db, portal.id, entity));
  const redacted = addCounts(
    {},
    await redactAlertTexts(deps.db, portal.id, erased),
    await forgetDestinationErrors(deps.db, portal),
  );
  await recordErasure(deps.db, portal.id, entity, deps.clock.now().getTime());
  await dropFreedPages(deps);
  deps.logger.info(
    { memberId: portal.member_id, entity: `${entity.type}:${entity.id}`, tables, redacted },
    'erased entity data',
  );
  return { tables, redacted };
}

/**
 * Everything of the portal (uninstall with CLEAN:
 * https://apidocs.bitrix24.com/api-reference/common/events/on-app-uninstall.html): its data, then
 * its settings, alert state, REST budget and the portal row with the tokens. The portal must
 * already refuse deliveries (status `uninstalled`, directory invalidated).
 *
 * `uninstallEventId`: the ONAPPUNINSTALL event whose job runs this. It and its job go in the
 * last transaction only, so an erasure stopped half-way (an error, a crash) is run again by
 * that job's retry instead of leaving the tokens and settings behind for good.
 */
export async function erasePortalEntirely(
  deps: Deps,
  portal: PortalRow,
  uninstallEventId?: number,
): Promise<TableCounts> {
  const { tables: counts } = await erasePortalData(deps, portal, uninstallEventId);
  addCounts(counts, await erasePortalInstallation(deps.db, portal));
  await dropFreedPages(deps);
  deps.portals.invalidate(portal.member_id);
  await forgetPortalSeries(deps.metrics, portal.member_id);
  deps.logger.info({ memberId: portal.member_id, tables: counts }, 'erased portal (CLEAN)');
  return counts;
}
