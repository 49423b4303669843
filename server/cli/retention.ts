import { isSqlite } from '../../db/connect.js';
import { databaseSize, fullVacuum, type TableCounts } from '../../db/stores/retention.js';
import type { Deps } from '../deps.js';
import { ENTITY_TYPES } from '../lib/entity-types.js';
import { eraseEntityData, erasePortalData, parseEntityRef } from '../retention/erase.js';
import { prune } from '../retention/prune.js';
import { requirePortal, str, type CommandContext } from './context.js';
import { table, UsageError } from './io.js';

const countsTable = (counts: TableCounts) =>
  table(
    ['table', 'rows'],
    Object.entries(counts).map(([t, n]) => [t, n]),
  );

/**
 * `prune [--dry-run] [--portal M] [--vacuum]`: one retention pass now (what the server does
 * in the background), or with --dry-run what it would remove, per table.
 */
export async function pruneCommand({ deps, flags, json, io }: CommandContext): Promise<number> {
  const memberId = str(flags, 'portal');
  const dryRun = flags['dry-run'] === true;
  const vacuum = flags.vacuum === true;
  if (vacuum && !isSqlite(deps.db)) {
    throw new UsageError('--vacuum is for SQLite; PostgreSQL reuses the space itself (autovacuum)');
  }
  const portal = memberId === undefined ? undefined : await requirePortal(deps, memberId);
  const before = await databaseSize(deps.db);
  const report = await prune(deps, { portal, dryRun });
  if (vacuum && dryRun) io.err('vacuum: not run with --dry-run (nothing is removed)\n');
  if (vacuum && !dryRun) {
    io.err('vacuum: rewriting the database file; writes (the intake too) wait until it ends\n');
    await fullVacuum(deps.db);
  }
  const after = await databaseSize(deps.db);
  if (json) {
    io.out(
      JSON.stringify({
        dryRun,
        tables: report.tables,
        portals: report.portals.map((p) => ({
          memberId: p.memberId,
          days: p.policy.days,
          failedDays: p.policy.failedDays,
          tables: p.tables,
        })),
        shared: report.shared,
        vacuumed: vacuum && !dryRun,
        databaseBytes: { before: before.bytes, after: after.bytes, free: after.freeBytes },
      }) + '\n',
    );
    return 0;
  }
  const total = Object.values(report.tables).reduce((s, n) => s + n, 0);
  io.out(`${dryRun ? 'would remove' : 'removed'}: ${total} rows\n`);
  if (total > 0) io.out(countsTable(report.tables));
  for (const p of report.portals) {
    const n = Object.values(p.tables).reduce((s, k) => s + k, 0);
    const keep = (d: number) => (d === 0 ? 'kept' : `${d} d`);
    io.out(
      `portal ${p.memberId} (events ${keep(p.policy.days)}, failed ${keep(p.policy.failedDays)}): ${n} rows\n`,
    );
  }
  io.out(`database: ${before.bytes} → ${after.bytes} bytes\n`);
  return 0;
}

/**
 * `erase --portal M [--entity TYPE:ID]`: removes a portal's (or one record's) personal data
 * on request and says what it removed, per table.
 */
export async function eraseCommand({ deps, flags, json, io }: CommandContext): Promise<number> {
  const memberId = str(flags, 'portal');
  if (!memberId) throw new UsageError('--portal MEMBER_ID is required');
  const ref = str(flags, 'entity');
  const entity = ref === undefined ? undefined : parseEntityRef(ref);
  if (ref !== undefined && !entity) {
    throw new UsageError(
      `--entity must be TYPE:ID such as deal:42 (ID the record’s number), TYPE one of ${ENTITY_TYPES.join(', ')} or dynamic:<entityTypeId>; got "${ref}"`,
    );
  }
  const portal = await requirePortal(deps, memberId);
  const { tables, redacted } = entity
    ? await eraseEntityData(deps, portal, entity)
    : await erasePortalData(deps, portal);
  if (json) {
    io.out(
      JSON.stringify({
        memberId,
        entity: entity ? `${entity.type}:${entity.id}` : null,
        tables,
        redacted,
      }) + '\n',
    );
    return 0;
  }
  const total = Object.values(tables).reduce((s, n) => s + n, 0);
  io.out(`erased ${total} rows of ${entity ? `${entity.type}:${entity.id} on ` : ''}${memberId}\n`);
  if (total > 0) io.out(countsTable(tables));
  else if (entity) {
    // Nothing is a right answer to an erasure request, and a typo in the id looks the same.
    // Nor does it mean nothing of the record is kept: other records' events may quote it (a
    // walk erased a contact, was told nothing was stored, and its phone stayed in 115 SMS
    // steps of its deals).
    io.err(
      `no event of ${entity.type}:${entity.id} is stored for ${memberId}: is the id right? ` +
        '(`b24hooks events --portal ' +
        memberId +
        '` lists the records it holds)\n',
    );
  }
  if (entity) {
    io.err(
      `values of ${entity.type}:${entity.id} quoted in other records' events and steps (a ` +
        "contact's phone in its deals' SMS steps) are not found by --entity: erase those records too\n",
    );
  }
  const kept = Object.values(redacted).reduce((s, n) => s + n, 0);
  if (kept > 0) {
    io.out(`texts quoting it removed from ${kept} rows that stay\n`);
    io.out(countsTable(redacted));
  }
  return 0;
}
