import type { Deps } from '../deps.js';
import type { EventFilter } from '../../db/stores/events.js';
import { countReplayable, queueReplayChunk } from '../../db/stores/replay.js';

export interface ReplayRequest {
  filter: EventFilter;
  rerunSucceeded?: boolean;
  dryRun?: boolean;
  /**
   * With `dryRun`: stop counting past this many (the UI's preview); else queue at most this
   * many (the UI's run, whose count was taken a moment before). @default no cap
   */
  cap?: number;
}

export interface ReplayResult {
  matched: number;
  /** The dry run's count stopped at `cap`: more events than `matched` match. */
  capped?: boolean;
  queued: number;
  eventIds: number[];
}

/**
 * Re-runs the handlers for logged events (CLI `replay` and the UI's replay page). Events are
 * queued in chunks, each its own short transaction, so thousands can be replayed while the
 * intake keeps writing.
 */
export async function replayEvents(
  deps: Deps,
  req: ReplayRequest,
  chunk = 500,
): Promise<ReplayResult> {
  const count = await countReplayable(deps.db, req.filter, {
    cap: req.dryRun ? req.cap : undefined,
  });
  const matched = count.n;
  if (req.dryRun) return { matched, capped: count.capped, queued: 0, eventIds: [] };
  const ids: number[] = [];
  let afterId = 0;
  const most = req.cap ?? Infinity;
  while (ids.length < most) {
    const r = await queueReplayChunk(deps.db, req.filter, {
      afterId,
      limit: Math.min(chunk, most - ids.length),
      rerunSucceeded: req.rerunSucceeded === true,
      maxAttempts: deps.config.worker.maxAttempts,
      now: deps.clock.now().getTime(),
    });
    if (r.ids.length === 0) break;
    ids.push(...r.ids);
    afterId = r.lastId;
    // Let other work (intake, worker) in between chunks.
    await new Promise((resolve) => setImmediate(resolve));
  }
  deps.logger.info(
    { matched, queued: ids.length, rerunSucceeded: req.rerunSucceeded === true },
    'replay queued',
  );
  return { matched, queued: ids.length, eventIds: ids };
}
