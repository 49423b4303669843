import type http from 'node:http';
import { BodyBuffer } from '../lib/body-buffer.js';
import type { Deps } from '../deps.js';
import type { FastRoute } from '../http-server.js';
import { createCommitQueue } from './commit-queue.js';
import { handleBody, type IntakeContext } from './deliver.js';
import { clientAddress, createIpAllowlist, type IpAllowlist } from './ip-allowlist.js';
import { createLogBudget } from '../lib/log-budget.js';
import { ByteBudget, LIFECYCLE_BYTES_PER_HOUR } from './byte-budget.js';
import { addIntakeRefusals } from './refusals.js';
import { createRejectBudget } from './reject-budget.js';
import { RequestRate, type Flood } from './request-rate.js';
import { send } from './respond.js';
import { markStorageFailing, markStorageWritable } from '../metrics.js';
import { createTokenDigests } from './token-digests.js';
import { createUnverifiedCap, proofJobKey } from './unverified-cap.js';
import { inlineWriter, type BatchWriter } from './writer.js';
import { hastenEntityJob } from '../../db/stores/jobs.js';
import { DEFAULT_SCOPE, getSetting, putSetting } from '../../db/stores/settings.js';

import type { IntakeOutcome, IntakeRow } from '../../db/stores/intake.js';

export { LIFECYCLE_EVENTS, type RejectReason } from './deliver.js';
export { dedupeKey } from './dedupe-key.js';
export { STORAGE_RETRY_AFTER_SECONDS } from './respond.js';
export { REJECTED_LOG_BUDGET_PER_MINUTE } from './reject-budget.js';

/** App-wide setting: the last Bitrix24 sender address list fetched (B24_IP_ALLOWLIST=bitrix24). */
const IP_LIST_KEY = 'bitrix24IpList';
export { FLOOD_MARK, type Flood } from './request-rate.js';

export interface Intake {
  readonly route: FastRoute;
  readonly allowlist: IpAllowlist;
  /**
   * Waits until every delivery accepted so far is committed, with what they set going off
   * their path (a proof job moved forward, refusals counted).
   */
  drain(): Promise<void>;
  /** Drains, then stops the allowlist refresh and the writer. */
  close(): Promise<void>;
  /**
   * Called after each committed batch that stored new jobs, with the earliest one's due time
   * (to wake the worker by then). Jobs of portals sending a flood wake nobody: the worker
   * runs them one at a time on its own schedule, and a wake-up per commit would have it
   * claim, and find nothing it may run, hundreds of times a second.
   */
  onStored(listener: (dueAt: number) => void): void;
  /**
   * Genuine deliveries (their portal's application token matched) received in the last full
   * second: the worker yields to a flood of them. Refused requests do not count: anyone may
   * post to the events URL, and 1,500 junk posts a second (answered 415, or 403 outside the
   * allowlist) held every portal's processing to about one event a second.
   */
  recentRate(): number;
  /**
   * Who floods the intake (server/intake/request-rate.ts): the worker holds back the
   * processing of the portals sending the flood, and only theirs.
   */
  flood(): Flood;
  /** Deliveries are waiting for their commit: other writers should hold back. */
  busy(): boolean;
}

/** The route's own checks, before the body is read. */
interface RouteContext {
  readonly config: Deps['config'];
  readonly metrics: Deps['metrics'];
  readonly logger: Deps['logger'];
  readonly allowlist: IpAllowlist;
  readonly intake: IntakeContext;
}

/**
 * The event intake (`handlers.events`). Checks, in the contract's order: 413 over
 * BODY_LIMIT, 415 for another content type, 400 for a malformed body, 401 for an unknown or
 * uninstalled portal or a wrong application_token. A delivery is answered 200 only after it
 * and its job are committed; an identical repeat is answered 200 and counted.
 */
export function createIntake(
  deps: Deps,
  opts: {
    writer?: BatchWriter;
    path?: string;
    /** The flood mark (deliveries a second), FLOOD_MARK by default. */
    floodMark?: number;
  } = {},
): Intake {
  const path = opts.path ?? deps.manifest.handlers.events;
  const writer = opts.writer ?? inlineWriter(deps.db);
  const { config, metrics, logger, box } = deps;
  const now = () => deps.clock.now().getTime();
  const listeners: Array<(dueAt: number) => void> = [];
  const queue = createCommitQueue(writer, now, {
    onCommitted: (rows, outcomes) => {
      markStorageWritable(metrics);
      const dueAt = earliestNewJob(rows, outcomes, rate.flood().portals);
      if (dueAt !== undefined) for (const l of listeners) l(dueAt);
    },
    onFailed: () => markStorageFailing(metrics),
  });
  const rate = new RequestRate(opts.floodMark);
  const allowlist = createIpAllowlist({
    entries: config.ipAllowlist,
    listUrls: config.ipListUrls,
    logger,
    // The last good list, for a start that cannot fetch one.
    store: {
      load: () => getSetting<string[]>(deps.db, DEFAULT_SCOPE, IP_LIST_KEY),
      save: (nodes) => putSetting(deps.db, DEFAULT_SCOPE, IP_LIST_KEY, nodes, deps.clock.now()),
    },
  });
  const intake: IntakeContext = {
    config,
    metrics,
    logger,
    box,
    portals: deps.portals,
    now,
    queue,
    digestOf: createTokenDigests(box),
    rejectBudget: createRejectBudget(now),
    unverifiedCap: createUnverifiedCap(deps.db, now),
    mayLog: createLogBudget(logger, now),
    rate,
    bytes: new ByteBudget(config.portalIntakeBytesPerHour),
    lifecycleBytes: new ByteBudget(
      Math.min(config.portalIntakeBytesPerHour, LIFECYCLE_BYTES_PER_HOUR),
    ),
    // Off the delivery's path (rare: only while a portal's token is unknown).
    proofDue: (portal) =>
      aside(
        hastenEntityJob(deps.db, proofJobKey(portal.id), now())
          .then((n) => {
            if (n > 0) for (const l of listeners) l(now());
          })
          .catch((e: unknown) =>
            logger.warn({ err: (e as Error).message }, 'proof job not moved forward'),
          ),
      ),
    // Off the delivery's path: its answer does not wait for this write.
    noteRefusals: (portal, count) =>
      aside(
        addIntakeRefusals(deps.db, portal.member_id, count, now()).catch((e: unknown) =>
          logger.warn({ err: (e as Error).message }, 'intake refusals not recorded'),
        ),
      ),
  };
  // Writes off the deliveries' path, which `drain` (and so `close`) still waits for: a
  // stop does not cut them off, and what a delivery set going is done once drained.
  const asides = new Set<Promise<void>>();
  const aside = (p: Promise<void>) => {
    asides.add(p);
    void p.finally(() => asides.delete(p));
  };
  const drain = async () => {
    await queue.drain();
    while (asides.size > 0) await Promise.all([...asides]);
  };
  const ctx: RouteContext = { config, metrics, logger, allowlist, intake };

  return {
    route: { method: 'POST', path, handle: (req, res) => receive(ctx, req, res) },
    allowlist,
    drain,
    async close() {
      await drain();
      allowlist.stop();
      await writer.close();
    },
    onStored(listener) {
      listeners.push(listener);
    },
    busy: () => queue.busy(),
    recentRate: () => rate.recent(),
    flood: () => rate.flood(),
  };
}

/**
 * The due time of the earliest job a committed batch created (undefined: none), leaving out
 * the jobs of the portals in `held`.
 */
function earliestNewJob(
  rows: IntakeRow[],
  outcomes: IntakeOutcome[],
  held: ReadonlySet<number>,
): number | undefined {
  let earliest: number | undefined;
  for (let i = 0; i < rows.length; i++) {
    const job = rows[i]!.job;
    const o = outcomes[i];
    if (!job || !o || o.duplicate || o.eventId === null) continue;
    if (held.size > 0 && job.portal_id != null && held.has(job.portal_id)) continue;
    if (earliest === undefined || job.run_at < earliest) earliest = job.run_at;
  }
  return earliest;
}

function isFormType(header: string | undefined): boolean {
  if (!header) return false;
  const semi = header.indexOf(';');
  return (
    (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase() ===
    'application/x-www-form-urlencoded'
  );
}

/**
 * 415 for another content type, after 413: a body whose length was declared (within the
 * limit) is answered at once; one streamed without a length is counted as it is read and
 * dropped, and answered 413 with the connection closed once it passes BODY_LIMIT, else 415
 * when it ends. Answering 415 first left a stream over the limit read to the end (up to the
 * request timeout: 30 s and hundreds of megabytes of a stranger's body).
 */
function refuseContentType(
  ctx: RouteContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  lengthKnown: boolean,
): void {
  const { metrics, config } = ctx;
  const refuse = () => {
    metrics.eventsRejected.inc({ reason: 'content_type' });
    send(res, 415, '{"error":"expected application/x-www-form-urlencoded"}');
  };
  req.on('error', () => {
    /* the client went away */
  });
  if (lengthKnown) {
    refuse();
    req.resume();
    return;
  }
  let seen = 0;
  let over = false;
  req.on('data', (chunk: Buffer) => {
    if (over) return;
    seen += chunk.length;
    if (seen <= config.bodyLimit) return;
    over = true;
    metrics.eventsRejected.inc({ reason: 'too_large' });
    send(res, 413, '{"error":"body too large"}', true);
  });
  req.on('end', () => {
    if (!over) refuse();
  });
}

/**
 * The route's handler: 403 outside the IP allowlist, 413 over BODY_LIMIT (declared or
 * counted while reading), 415 for another content type; then the body goes to `handleBody`.
 */
function receive(ctx: RouteContext, req: http.IncomingMessage, res: http.ServerResponse): void {
  const { config, metrics, logger, allowlist } = ctx;
  const remote = clientAddress(req, config.trustProxy);
  if (allowlist.enabled && !allowlist.allows(remote)) {
    metrics.eventsRejected.inc({ reason: 'ip_not_allowed' });
    if (ctx.intake.mayLog('ip_not_allowed')) {
      logger.warn({ remote }, 'event delivery from an address outside B24_IP_ALLOWLIST');
    }
    send(res, 403, '{"error":"forbidden"}', true);
    req.resume();
    return;
  }
  const limit = config.bodyLimit;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) {
    metrics.eventsRejected.inc({ reason: 'too_large' });
    send(res, 413, '{"error":"body too large"}', true);
    req.resume();
    return;
  }
  if (!isFormType(req.headers['content-type'])) {
    refuseContentType(ctx, req, res, Number.isFinite(declared));
    return;
  }
  const body = new BodyBuffer();
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    if (tooLarge) return;
    if (body.size + chunk.length > limit) {
      tooLarge = true;
      body.clear();
      metrics.eventsRejected.inc({ reason: 'too_large' });
      send(res, 413, '{"error":"body too large"}', true);
      return;
    }
    body.append(chunk, limit);
  });
  req.on('end', () => {
    if (tooLarge) return;
    const raw = body.text();
    handleBody(ctx.intake, res, raw, remote).catch((e: unknown) => {
      logger.error({ err: e }, 'event intake failed');
      send(res, 500, '{"error":"internal error"}');
    });
  });
  req.on('error', () => {
    /* the client went away; nothing was acknowledged */
  });
}
