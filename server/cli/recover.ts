import { createSweeper, SweepRefusedError } from '../recovery/sweep.js';
import type { GapRow } from '../../db/stores/recovery.js';
import { requirePortal, type CommandContext } from './context.js';
import { iso, parseIsoTime, table, UsageError } from './io.js';

const DAY = 24 * 3600_000;

/** A gap record as the CLI prints it (`status --json` and `recover sweep --json`). */
export function gapJson(g: GapRow) {
  return {
    id: g.id,
    trigger: g.trigger,
    status: g.status,
    startedAt: iso(g.started_at),
    endedAt: iso(g.ended_at),
    sweepStartedAt: iso(g.sweep_started_at),
    sweepFinishedAt: iso(g.sweep_finished_at),
    memberId: g.member_id,
    listed: g.listed,
    enqueued: g.enqueued,
    portals: g.portals.map((p) => ({
      memberId: p.memberId,
      status: p.status,
      listed: p.listed,
      enqueued: p.enqueued,
      types: p.types,
      ...(p.unsupported?.length ? { unsupported: p.unsupported } : {}),
      ...(p.error ? { error: p.error } : {}),
    })),
  };
}

/**
 * `recover sweep [--since ISO] [--portal MEMBER_ID]`: lists the watched entities changed
 * since then and queues reconcile events for those our events and snapshots do not account
 * for (server/recovery/sweep.ts); the running server processes them. Exit 0 when every
 * portal was swept, 1 when one failed or another sweep is running, 2 on bad usage.
 */
export async function recoverCommand(ctx: CommandContext): Promise<number> {
  const { deps, io, json, flags, positionals } = ctx;
  const [sub, ...extra] = positionals;
  if (sub !== 'sweep') {
    throw new UsageError(
      `${sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`}; expected sweep`,
    );
  }
  if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`);
  for (const name of ['since', 'portal']) {
    if (flags[name] === true) throw new UsageError(`--${name} needs a value`);
  }
  const now = deps.clock.now().getTime();
  const since =
    parseIsoTime('--since', typeof flags.since === 'string' ? flags.since : undefined) ?? now - DAY;
  if (since >= now) throw new UsageError('--since must be in the past');
  const memberId = typeof flags.portal === 'string' ? flags.portal : undefined;
  if (memberId !== undefined) await requirePortal(deps, memberId);

  let gap: GapRow;
  try {
    gap = await createSweeper(deps).run({
      since,
      until: now,
      memberId,
      trigger: 'cli',
      requestedBy: 'cli',
    });
  } catch (e) {
    if (!(e instanceof SweepRefusedError)) throw e;
    io.err(`b24hooks recover: ${e.message}\n`);
    return 1;
  }
  if (json) io.out(JSON.stringify(gapJson(gap)) + '\n');
  else {
    io.out(
      table(
        ['portal', 'status', 'listed', 'enqueued', 'types', 'note'],
        gap.portals.map((p) => [
          p.memberId,
          p.status,
          p.listed,
          p.enqueued,
          p.types.join(',') || null,
          p.error ?? (p.unsupported?.length ? `not listable: ${p.unsupported.join(',')}` : null),
        ]),
      ),
    );
    io.out(
      `sweep #${gap.id} since ${iso(gap.started_at)}: ${gap.status}, ${gap.listed} listed, ` +
        `${gap.enqueued} reconcile events queued (the running server processes them)\n`,
    );
  }
  return gap.status === 'done' ? 0 : 1;
}
