import { destinationJson, openDestinations } from '../../db/stores/destinations.js';
import {
  emptyFigures,
  listEvents,
  statusFigures,
  statusFiguresByPortal,
} from '../../db/stores/events.js';
import { listPortals, portalEvents } from '../../db/stores/portals.js';
import { lastGap, recoveredCounts, recoveredCountsByPortal } from '../../db/stores/recovery.js';
import { slaByPeriod } from '../alerts/sla.js';
import { eventTypo } from '../config/bitrix-events.js';
import { destinationName } from '../lib/destination-name.js';
import { migrateToLatest } from '../../db/migrate.js';
import { backfillMatchSla } from '../rules/sla-rules.js';
import { parseStatus, requirePortal, str, type CommandContext } from './context.js';
import { iso, parseIsoTime, parseLimit, table, UsageError } from './io.js';
import { gapJson } from './recover.js';

export async function migrateCommand({ deps, json, io }: CommandContext): Promise<number> {
  const applied = await migrateToLatest(deps.db, { beforeRecount: backfillMatchSla });
  if (json) io.out(JSON.stringify({ applied }) + '\n');
  else io.out(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
  return 0;
}

export async function statusCommand({ deps, json, io }: CommandContext): Promise<number> {
  const now = deps.clock.now();
  const total = await statusFigures(deps.db, now);
  // Every portal's figures in a few reads (thousands of portals: not a few queries each).
  const listed = await listPortals(deps.db);
  const figures = await statusFiguresByPortal(
    deps.db,
    now,
    listed.map((p) => p.id),
  );
  const recoveredBy = await recoveredCountsByPortal(deps.db);
  const portals = listed.map((p) => {
    const byPortal = recoveredBy.get(p.id) ?? { offline: 0, sweep: 0 };
    return {
      memberId: p.member_id,
      domain: p.domain,
      ...(figures.get(p.id) ?? emptyFigures()),
      recovered: byPortal.offline + byPortal.sweep,
    };
  });
  // SLA share per rule over 24 h and 7 d: a key added to the documented `status` shape.
  const sla = await slaByPeriod(deps);
  // Loss recovery, keys added to the documented shape: events recovered from
  // offline queues and by downtime sweeps, and the last gap swept with its coverage.
  const counts = await recoveredCounts(deps.db);
  const recovered = counts.offline + counts.sweep;
  const gap = await lastGap(deps.db);
  const recovery = { ...counts, lastGap: gap ? gapJson(gap) : null };
  // Fair processing: destinations whose circuit is open, and what waits for them.
  const destinations = (await openDestinations(deps.db)).map(destinationJson);
  if (json) {
    io.out(JSON.stringify({ total, portals, sla, recovered, recovery, destinations }) + '\n');
    return 0;
  }
  const cols = [
    'received',
    'processing',
    'processed',
    'failed',
    'skipped',
    'rejected',
    'unverified',
    'backlog',
    'oldestPendingSeconds',
    'avgProcessingMs',
    'p95ProcessingMs',
  ] as const;
  // Whole seconds, as in the JSON; a backlog younger than one second reads "<1", not 0 (which
  // beside a backlog read as "nothing waits").
  const cell = (f: typeof total, c: (typeof cols)[number]) =>
    c === 'oldestPendingSeconds' && f.backlog > 0 && f[c] === 0 ? '<1' : f[c];
  const rows = [
    ['total', ...cols.map((c) => cell(total, c))],
    ...portals.map((p) => [p.memberId, ...cols.map((c) => cell(p, c))]),
  ];
  io.out(table(['portal', ...cols.map((c) => c.replace(/([A-Z])/g, ' $1').toLowerCase())], rows));
  if (sla.length) {
    io.out(
      '\n' +
        table(
          ['rule', 'period', 'sla s', 'total', 'within sla', 'share'],
          sla.map((f) => [
            f.rule,
            f.period,
            f.slaSeconds,
            f.total,
            f.withinSla,
            f.share === null ? null : `${(f.share * 100).toFixed(1)} %`,
          ]),
        ),
    );
  }
  io.out(`\nrecovered: ${recovered} (offline ${counts.offline}, sweep ${counts.sweep})\n`);
  if (gap) {
    const swept = gap.portals.filter((p) => p.status === 'done').length;
    io.out(
      `last gap: ${iso(gap.started_at)} → ${iso(gap.ended_at)} (${gap.trigger}), ${gap.status}: ` +
        `${swept} of ${gap.portals.length} portals swept, ${gap.listed} entities checked, ` +
        `${gap.enqueued} reconcile events\n`,
    );
  } else io.out('last gap: none\n');
  for (const d of destinations) {
    io.out(
      `destination down: ${destinationName(d.destination)} [${d.destination}] (${d.failures} failures, ${d.waitingJobs} jobs wait, ` +
        `next probe ${d.nextProbeAt})\n`,
    );
  }
  return 0;
}

export async function eventsCommand({ deps, flags, json, io }: CommandContext): Promise<number> {
  const memberId = str(flags, 'portal');
  const limit = parseLimit(str(flags, 'limit'), 100);
  const from = parseIsoTime('--from', str(flags, 'from'));
  const to = parseIsoTime('--to', str(flags, 'to'), { endOfDay: true });
  // Swapped bounds listed nothing, as if no event had come (replay refuses them alike).
  if (from !== undefined && to !== undefined && to < from)
    throw new UsageError('--to must not be before --from');
  const status = parseStatus(str(flags, 'status'));
  const rows = await listEvents(deps.db, {
    memberId,
    event: str(flags, 'event'),
    status,
    from,
    to,
    limit,
  });
  // A typo in --portal would read as "no events"; a member_id with no portal but with
  // events (rejected posts naming it) is listed.
  if (memberId !== undefined && rows.length === 0) await requirePortal(deps, memberId);
  // So would a typo in --event: the likely name is said, as on the replay page.
  const event = str(flags, 'event')?.toUpperCase();
  const meant = rows.length === 0 && event ? eventTypo(event) : undefined;
  if (meant && meant !== event) io.err(`no ${event} events; did you mean ${meant}?\n`);
  const out = rows.map((r) => ({
    id: r.id,
    memberId: r.member_id,
    event: r.event,
    entityType: r.entity_type,
    entityId: r.entity_id,
    status: r.status,
    attempts: r.attempts,
    receivedAt: iso(r.received_at),
    processedAt: iso(r.processed_at),
    // A rejected delivery has no error of its own: why it was refused (unknown_portal,
    // token_mismatch, …) is what the operator looks for.
    lastError:
      r.last_error ??
      (r.status === 'rejected' && r.reject_reason ? `rejected: ${r.reject_reason}` : null),
  }));
  if (json) io.out(JSON.stringify(out) + '\n');
  else
    io.out(
      table(
        ['id', 'received', 'portal', 'event', 'entity', 'status', 'attempts', 'error or note'],
        out.map((e) => [
          e.id,
          e.receivedAt,
          e.memberId,
          e.event,
          // An app lifecycle event has a type (app) and no id.
          [e.entityType, e.entityId].filter(Boolean).join(' ') || null,
          e.status,
          e.attempts,
          // A skipped or processed event's text is the app's note (why no rule ran), not an
          // error; `--json` keeps it in `lastError`, as the contract names it.
          e.lastError && ['skipped', 'processed'].includes(e.status)
            ? `note: ${e.lastError}`
            : e.lastError,
        ]),
      ),
    );
  return 0;
}

export async function portalsCommand({ deps, json, io }: CommandContext): Promise<number> {
  const out = (await listPortals(deps.db)).map((p) => ({
    memberId: p.member_id,
    domain: p.domain,
    status: p.status,
    tokenExpiresAt: iso(p.token_expires_at),
    events: portalEvents(p),
    authMode: p.auth_mode,
    // Why an installed portal's processing waits (invalid_client, payment_required), or null.
    pauseReason: p.pause_reason,
  }));
  if (json) io.out(JSON.stringify(out) + '\n');
  else
    io.out(
      table(
        ['member_id', 'domain', 'status', 'token expires', 'events bound'],
        out.map((p) => [
          p.memberId,
          p.domain,
          p.pauseReason ? `${p.status} (paused: ${p.pauseReason})` : p.status,
          p.tokenExpiresAt,
          p.events.join(',') || null,
        ]),
      ),
    );
  return 0;
}
