import { countUnfinished, firstFailed, statusCounts } from '../../db/stores/replay.js';
import { openInstanceLock } from '../cluster/instance-lock.js';
import { replayEvents } from '../processing/replay.js';
import { parseStatus, requirePortal, str, type CommandContext } from './context.js';
import { parseIsoTime, UsageError } from './io.js';
import { createProcessing } from '../services.js';

/**
 * `replay --from ISO --to ISO [--event NAME] [--portal M] [--status S] [--dry-run]
 * [--rerun-succeeded] [--wait]`: re-runs the handlers for logged events. With --wait it
 * also works the queue itself until those events are finished (or --timeout seconds pass).
 */
export async function replayCommand(ctx: CommandContext): Promise<number> {
  const { deps, io, json } = ctx;
  const fromRaw = str(ctx.flags, 'from');
  const toRaw = str(ctx.flags, 'to');
  if (!fromRaw || !toRaw) throw new UsageError('--from and --to are required (ISO times)');
  const from = parseIsoTime('--from', fromRaw)!;
  const to = parseIsoTime('--to', toRaw, { endOfDay: true })!;
  if (to <= from) throw new UsageError('--to must be after --from');
  const memberId = str(ctx.flags, 'portal');
  if (memberId !== undefined) await requirePortal(deps, memberId);
  const status = parseStatus(str(ctx.flags, 'status'));
  if (status === 'rejected' || status === 'unverified') {
    throw new UsageError(
      `--status ${status}: such events were never verified and cannot be replayed`,
    );
  }
  const timeoutRaw = str(ctx.flags, 'timeout');
  // Without --wait it bounded nothing, and the replay ran as if it were not there.
  if (timeoutRaw !== undefined && ctx.flags.wait !== true)
    throw new UsageError('--timeout bounds --wait: give both, or neither');
  const timeoutMs = timeoutRaw === undefined ? 300_000 : Number(timeoutRaw) * 1000;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0)
    throw new UsageError('--timeout must be a number of seconds');
  const result = await replayEvents(deps, {
    filter: { from, to, memberId, event: str(ctx.flags, 'event'), status },
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
    out.statuses = await statusCounts(deps.db, result.eventIds);
  }
  if (json) io.out(JSON.stringify(out) + '\n');
  else if (out.dryRun) io.out(`${result.matched} events would be replayed\n`);
  else {
    const statuses = out.statuses as Record<string, number> | undefined;
    // `now 1 failed, 2 received`, not the JSON object.
    const now = statuses
      ? `; now ${Object.entries(statuses)
          .map(([st, n]) => `${n} ${st}`)
          .join(', ')}`
      : '';
    io.out(`${result.queued} events queued for replay${now}\n`);
  }
  // With --wait the command waited for an outcome: one that is not done, or failed, is a
  // failure (exit 1), said in one line. A replay's events may fail because this process
  // lacks a setting the server has (the worker here runs with the CLI's environment).
  const failed = (out.statuses as Record<string, number> | undefined)?.failed ?? 0;
  let failures = '';
  if (failed > 0) {
    const first = await firstFailed(deps.db, result.eventIds);
    // As `events` prints it (errors are stored masked).
    const why = first
      ? ` (event ${first.id}: ${(first.lastError ?? '').split('\n')[0]!.slice(0, 300)})`
      : '';
    failures = `${failed} of ${result.queued} replayed events failed${why}; b24hooks events --status failed lists them`;
  }
  if (out.unfinished) {
    io.err(
      `b24hooks replay: ${String(out.unfinished)} of ${result.queued} events not finished within --timeout` +
        `${failures ? `; ${failures}` : ''}\n`,
    );
    return 1;
  }
  if (failures) {
    io.err(`b24hooks replay: ${failures}\n`);
    return 1;
  }
  return 0;
}

async function waitFor(ctx: CommandContext, ids: number[], timeoutMs: number): Promise<number> {
  const { deps } = ctx;
  // On PostgreSQL the CLI works beside the servers: its leases carry a presence lock, so a
  // CLI killed mid-job has its jobs put back by a server (server/cluster/instance-lock.ts).
  const db = deps.config.database;
  const instanceLock =
    db.client === 'pg' ? await openInstanceLock(db.connectionString, deps.logger) : undefined;
  // The same handlers as the server's worker (server/services.ts): whatever job this worker
  // claims (an alert, an offline notice) is handled as the server would.
  const { worker, close } = createProcessing(deps, { instanceLock, worker: { pollMs: 200 } });
  const deadline = Date.now() + timeoutMs;
  const sleep = (ms: number) =>
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), Math.max(0, ms)).unref());
  try {
    for (;;) {
      // One claim at a time, against the clock: a step that takes long (a slow target) no
      // longer keeps the CLI past --timeout; what is still running is released on close.
      const round = await Promise.race([worker.drain(1), sleep(deadline - Date.now())]);
      const left = await countUnfinished(deps.db, ids);
      if (left === 0 || round === 'timeout' || Date.now() > deadline) return left;
      if (round.length === 0) await sleep(Math.min(250, deadline - Date.now()));
    }
  } finally {
    await close(5_000);
    await instanceLock?.close();
  }
}
