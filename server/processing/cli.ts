import { parseIsoTime, UsageError, type CliIo } from '../cli/io.js';
import { parseStatus, requirePortal, type CommandContext } from '../cli/commands.js';
import { entityOf } from '../intake/entity.js';
import { createEventProcessor } from './process-event.js';
import { createEntityReader } from './entity-reader.js';
import { replayEvents } from './replay.js';
import { createWorker } from '../queue/worker.js';
import { openInstanceLock } from '../cluster/instance-lock.js';
import { lifecycleHandler } from '../install/lifecycle.js';
import { createMailer } from '../actions/index.js';
import { dryRun } from '../rules/dry-run.js';
import { relatedToLoad } from '../rules/needs.js';
import { getSnapshot } from '../../db/stores/processing.js';
import { countUnfinished } from '../../db/stores/replay.js';
import { maskMap } from '../rules/secret-fields.js';
import { effectiveMap } from '../../db/stores/rules.js';

const str = (ctx: CommandContext, name: string): string | undefined => {
  const v = ctx.flags[name];
  if (v === true) throw new UsageError(`--${name} needs a value`);
  return typeof v === 'string' ? v : undefined;
};

/**
 * `replay --from ISO --to ISO [--event NAME] [--portal M] [--status S] [--dry-run]
 * [--rerun-succeeded] [--wait]`: re-runs the handlers for logged events. With --wait it
 * also works the queue itself until those events are finished (or --timeout seconds pass).
 */
export async function replayCommand(ctx: CommandContext): Promise<number> {
  const { deps, io, json } = ctx;
  const fromRaw = str(ctx, 'from');
  const toRaw = str(ctx, 'to');
  if (!fromRaw || !toRaw) throw new UsageError('--from and --to are required (ISO times)');
  const from = parseIsoTime('--from', fromRaw)!;
  const to = parseIsoTime('--to', toRaw)!;
  if (to <= from) throw new UsageError('--to must be after --from');
  const memberId = str(ctx, 'portal');
  if (memberId !== undefined) await requirePortal(deps, memberId);
  const status = parseStatus(str(ctx, 'status'));
  if (status === 'rejected' || status === 'unverified') {
    throw new UsageError(
      `--status ${status}: such events were never verified and cannot be replayed`,
    );
  }
  const timeoutRaw = str(ctx, 'timeout');
  const timeoutMs = timeoutRaw === undefined ? 300_000 : Number(timeoutRaw) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new UsageError('--timeout must be a number of seconds');
  const result = await replayEvents(deps, {
    filter: { from, to, memberId, event: str(ctx, 'event'), status },
    dryRun: ctx.flags['dry-run'] === true,
    rerunSucceeded: ctx.flags['rerun-succeeded'] === true,
  });
  const out: Record<string, unknown> = {
    matched: result.matched,
    queued: result.queued,
    dryRun: ctx.flags['dry-run'] === true,
  };
  if (ctx.flags.wait === true && result.queued > 0) {
    out.unfinished = await waitFor(ctx, result.eventIds, timeoutMs);
    const done = (await deps
      .db('events')
      .whereIn('id', result.eventIds.slice(0, 30_000))
      .select('status')
      .count({ n: '*' })
      .groupBy('status')) as { status: string; n: number | string }[];
    out.statuses = Object.fromEntries(done.map((d) => [d.status, Number(d.n)]));
  }
  if (json) io.out(JSON.stringify(out) + '\n');
  else if (out.dryRun) io.out(`${result.matched} events would be replayed\n`);
  else {
    io.out(
      `${result.queued} events queued for replay${out.statuses ? `; now ${JSON.stringify(out.statuses)}` : ''}\n`,
    );
  }
  return out.unfinished ? 1 : 0;
}

async function waitFor(ctx: CommandContext, ids: number[], timeoutMs: number): Promise<number> {
  const { deps } = ctx;
  const mailer = createMailer();
  // On PostgreSQL the CLI works beside the servers: its leases carry a presence lock, so a
  // CLI killed mid-job has its jobs put back by a server (server/cluster/instance-lock.ts).
  const db = deps.config.database;
  const instanceLock =
    db.client === 'pg' ? await openInstanceLock(db.connectionString, deps.logger) : undefined;
  const worker = createWorker(deps, {
    instanceLock,
    pollMs: 200,
    handlers: {
      process_event: createEventProcessor(deps, { mailer }),
      lifecycle: lifecycleHandler,
    },
  });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      await worker.drain(100);
      const left = await countUnfinished(deps.db, ids);
      if (left === 0 || Date.now() > deadline) return left;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await worker.stop(5_000);
    await instanceLock?.close();
    mailer.close();
  }
}

/** `rules test --portal M --event E --id N`: which rules match and what they would send. Sends nothing. */
export async function rulesTestCommand(ctx: CommandContext): Promise<number> {
  const { deps, io, json } = ctx;
  const memberId = str(ctx, 'portal');
  const eventName = str(ctx, 'event')?.toUpperCase();
  const id = str(ctx, 'id');
  if (!memberId || !eventName || !id)
    throw new UsageError('rules test needs --portal, --event and --id');
  const portal = await requirePortal(deps, memberId);
  // A dry run never opens credentials: the steps show them masked.
  const map = maskMap(await effectiveMap(deps.db, memberId), deps.box);
  // A per-type smart-process name (ONCRMDYNAMICITEMUPDATE_128) names the type; rules are
  // written on the plain event name, which is what Bitrix24 delivers with ENTITY_TYPE_ID.
  const perType = /^(ONCRMDYNAMICITEM(?:ADD|UPDATE|DELETE))_(\d+)$/.exec(eventName);
  const ruleEvent = perType?.[1] ?? eventName;
  const { type } = entityOf(eventName, { FIELDS: { ID: id, ENTITY_TYPE_ID: perType?.[2] } });
  if (!type) throw new UsageError(`cannot tell which entity ${eventName} is about`);
  const reader = createEntityReader(deps);
  const entity = /DELETE$/.test(ruleEvent)
    ? { ID: id }
    : await reader.read(portal, type, id, Number.MAX_SAFE_INTEGER);
  if (entity === null) {
    io.err(`${type} ${id} does not exist on ${portal.domain}\n`);
    return 1;
  }
  const rules = map.rules.filter((r) => r.on.includes(ruleEvent));
  const related: Record<string, Record<string, unknown> | undefined> = {};
  for (const root of relatedToLoad(rules)) {
    const rid = entity?.[`${root.toUpperCase()}_ID`] ?? entity?.[`${root}Id`];
    if (rid && rid !== '0')
      related[root] =
        (await reader.read(portal, root, String(rid), Number.MAX_SAFE_INTEGER)) ?? undefined;
  }
  const previous = await getSnapshot(deps.db, portal.id, type, id);
  const results = dryRun(map, {
    event: { name: ruleEvent, memberId, entityType: type, entityId: id },
    entity: entity ?? undefined,
    previous,
    related,
    portal: { domain: portal.domain, memberId },
  });
  if (json)
    io.out(
      JSON.stringify({
        portal: memberId,
        event: eventName,
        entity: { type, id },
        previous: previous ?? null,
        rules: results,
      }) + '\n',
    );
  else printDryRun(io, results, previous);
  return 0;
}

function printDryRun(io: CliIo, results: ReturnType<typeof dryRun>, previous: unknown) {
  io.out(
    `snapshot: ${previous === undefined ? 'none (first sighting)' : JSON.stringify(previous)}\n`,
  );
  if (results.length === 0) io.out('no rules in the map\n');
  for (const r of results) {
    io.out(`${r.matched ? 'MATCH' : 'no   '} ${r.rule}: ${r.reason}\n`);
    for (const s of r.steps ?? []) {
      io.out(
        `      ${s.index + 1}. ${s.type}${s.name ? ` (${s.name})` : ''}: ${s.error ? `ERROR ${s.error}` : JSON.stringify(s.rendered)}\n`,
      );
    }
  }
}
