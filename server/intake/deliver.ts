import type http from 'node:http';
import type { Deps } from '../deps.js';
import { safeEqual } from '../lib/crypto.js';
import { AppError } from '../lib/errors.js';
import type { IntakeRow } from '../../db/stores/intake.js';
import { portalEvents, type PortalRow } from '../../db/stores/portals.js';
import type { CommitQueue } from './commit-queue.js';
import { dedupeKey, SHARED_KEY_FIELD, unverifiedDedupeKey } from './dedupe-key.js';
import { entityOf, isDeleteEvent } from './entity.js';
import { parseEventBody, type Delivery } from './event-body.js';
import { deliveredTokens, maskedBody } from './mask.js';
import type { RejectBudget } from './reject-budget.js';
import { storedCost, type ByteBudget } from './byte-budget.js';
import type { RequestRate } from './request-rate.js';
import { OK, OK_DUPLICATE, send, STORAGE_RETRY_AFTER_SECONDS } from './respond.js';
import {
  proofJobKey,
  UNVERIFIED_RETRY_AFTER_SECONDS,
  type UnverifiedCap,
} from './unverified-cap.js';

/**
 * Events that manage the app itself; they get a `lifecycle` job. ONAPPTEST is the delivery
 * the app asks for while it lacks the portal's application token (install/bindings.ts).
 */
export const LIFECYCLE_EVENTS = new Set([
  'ONAPPINSTALL',
  'ONAPPUPDATE',
  'ONAPPUNINSTALL',
  'ONAPPTEST',
]);
/**
 * Events that can prove their own tokens by REST calls to the stored portal, while the
 * portal's application token is not known yet. Once it is known, a lifecycle event with
 * another token is refused like any other: a reinstall with a new token comes through the
 * install handler, which the OAuth server confirms.
 */
const PROVABLE_EVENTS = new Set(['ONAPPINSTALL', 'ONAPPTEST']);

export type RejectReason =
  'unknown_portal' | 'uninstalled_portal' | 'token_mismatch' | 'missing_token' | 'ip_not_allowed';

/** What the intake's module functions share: built once by `createIntake`. */
export interface IntakeContext extends Pick<
  Deps,
  'config' | 'metrics' | 'logger' | 'box' | 'portals'
> {
  /** The injected clock, in ms. */
  now(): number;
  /** The group commit every delivery (and logged rejection) goes through. */
  queue: CommitQueue;
  /** The digest of an application token (cached: one HMAC per portal, not per request). */
  digestOf(token: string): string;
  rejectBudget: RejectBudget;
  unverifiedCap: UnverifiedCap;
  /** Whether a line about a refused delivery may still be logged this minute (server/lib/log-budget.ts). */
  mayLog(kind: string): boolean;
  /** Genuine deliveries per second, in all and per portal (Intake.recentRate, Intake.flood). */
  rate: RequestRate;
  /** What each portal's genuine deliveries may still store (PORTAL_INTAKE_MB_PER_HOUR). */
  bytes: ByteBudget;
  /** The same for the app's own events, apart (LIFECYCLE_BYTES_PER_HOUR). */
  lifecycleBytes: ByteBudget;
  /** Keeps a portal's refusals for its dashboard (refusals.ts); once a minute per portal. */
  noteRefusals(portal: PortalRow, count: number): void;
  /**
   * A delivery that can prove the portal's token was stored: its proof job, if one waits to
   * look again later (install/lifecycle.ts PROOF_RECHECK_MS), runs now instead (the stored
   * one took the portal's one pending place).
   */
  proofDue(portal: PortalRow): void;
}

/**
 * A received body, in the contract's order: 400 for a malformed body, 401 for an unknown or
 * uninstalled portal or a wrong application_token; else stored (verified, or kept
 * unverified while the portal's token is not known yet).
 */
export async function handleBody(
  ctx: IntakeContext,
  res: http.ServerResponse,
  raw: string,
  remote: string | undefined,
): Promise<void> {
  let d: Delivery;
  try {
    d = parseEventBody(raw);
  } catch (e) {
    const reason = e instanceof AppError ? e.message : 'malformed body';
    ctx.metrics.eventsRejected.inc({ reason: 'malformed' });
    send(res, 400, JSON.stringify({ error: reason.slice(0, 200) }));
    return;
  }
  const portal = await ctx.portals.get(d.auth.member_id);
  if (!portal) return reject(ctx, res, 'unknown_portal', d, undefined, remote);
  if (portal.status === 'uninstalled')
    return reject(ctx, res, 'uninstalled_portal', d, portal, remote);
  const given = d.auth.application_token ?? '';
  if (!portal.application_token_digest) {
    // The install race: the token is not known yet. Keep it and verify it once it is.
    return accept(ctx, res, d, portal, remote, false);
  }
  if (!given) return reject(ctx, res, 'missing_token', d, portal, remote);
  if (safeEqual(ctx.digestOf(given), portal.application_token_digest)) {
    return accept(ctx, res, d, portal, remote, true);
  }
  return reject(ctx, res, 'token_mismatch', d, portal, remote);
}

/** The event row of a delivery, before its verdict: status `received`, tokens masked. */
function baseRow(
  ctx: IntakeContext,
  d: Delivery,
  portal: PortalRow | undefined,
  remote: string | undefined,
  dataJson = JSON.stringify(d.data),
): IntakeRow['event'] {
  const entity = entityOf(d.event, d.data);
  return {
    portal_id: portal?.id ?? null,
    member_id: d.auth.member_id,
    event: d.event,
    event_handler_id: d.eventHandlerId ?? null,
    entity_type: entity.type,
    entity_id: entity.id,
    ts: d.ts ?? null,
    body: maskedBody(d, dataJson),
    auth_enc: null,
    dedupe_key: null,
    status: 'received',
    reject_reason: null,
    source: 'online',
    received_at: ctx.now(),
    remote_addr: remote ?? null,
  };
}

/** 401 with a bland body; the reason goes to the log, metrics and (within a budget) the store. */
async function reject(
  ctx: IntakeContext,
  res: http.ServerResponse,
  reason: RejectReason,
  d: Delivery | undefined,
  portal: PortalRow | undefined,
  remote: string | undefined,
): Promise<void> {
  const { metrics, logger } = ctx;
  metrics.eventsRejected.inc({ reason });
  if (portal && d) {
    // Labels only from what we know (stored portal, its bound events), so forged posts
    // cannot grow the number of series.
    const event = portalEvents(portal).includes(d.event) ? d.event : 'other';
    metrics.eventsRejectedByPortal.inc({ portal: portal.member_id, event });
  }
  if (ctx.mayLog('rejected')) {
    logger.warn(
      { reason, memberId: d?.auth.member_id, event: d?.event, remote },
      'event delivery rejected',
    );
  }
  if (d && ctx.rejectBudget.take(reason, d.auth.member_id)) {
    const row = baseRow(ctx, d, portal, remote);
    row.status = 'rejected';
    row.reject_reason = reason;
    row.body = row.body && row.body.length > 4096 ? row.body.slice(0, 4096) : row.body;
    try {
      await ctx.queue.submit({ event: row, job: null });
    } catch (e) {
      logger.error({ err: e }, 'could not log a rejected delivery');
    }
  }
  send(res, 401, '{"error":"unauthorized"}');
}

/**
 * Stores a delivery with its job and answers 200 once both are committed (an identical
 * repeat too, counted as a duplicate). Unverified deliveries are kept, within the
 * portal's cap, with their tokens sealed.
 */
async function accept(
  ctx: IntakeContext,
  res: http.ServerResponse,
  d: Delivery,
  portal: PortalRow,
  remote: string | undefined,
  verified: boolean,
): Promise<void> {
  const { metrics, logger } = ctx;
  const dataJson = JSON.stringify(d.data);
  const row = baseRow(ctx, d, portal, remote, dataJson);
  row.dedupe_key = dedupeKey(d, dataJson, row.entity_id);
  let job: IntakeRow['job'] = null;
  if (verified) {
    const budget = LIFECYCLE_EVENTS.has(d.event) ? ctx.lifecycleBytes : ctx.bytes;
    const wait = budget.take(portal.id, storedCost(row.body));
    if (wait > 0) {
      refuseOverBudget(ctx, res, d, portal, budget, wait);
      return;
    }
    ctx.rate.hit(portal.id);
    job = deliveryJob(ctx.config.worker, row, portal.id);
  } else {
    row.status = 'unverified';
    // Sealed with the tokens: the shared key, which the delivery takes once verified.
    const shared = row.dedupe_key;
    row.dedupe_key = unverifiedDedupeKey(shared, d.auth.application_token ?? '');
    row.auth_enc = ctx.box.encrypt(
      JSON.stringify({ ...deliveredTokens(d), [SHARED_KEY_FIELD]: shared }),
    );
    const provable = PROVABLE_EVENTS.has(d.event);
    const bytes = (row.body?.length ?? 0) + row.auth_enc.length;
    const refused = await ctx.unverifiedCap.admit(portal.id, bytes, provable);
    if (refused) {
      metrics.eventsRejected.inc({ reason: `unverified_cap_${refused}` });
      if (ctx.mayLog('unverified_cap')) {
        logger.warn(
          { memberId: d.auth.member_id, event: d.event, bound: refused, remote },
          'unverified delivery refused: the portal holds as many as it may until its token is known',
        );
      }
      send(res, 503, '{"error":"too many unverified deliveries"}', false, {
        'retry-after': String(UNVERIFIED_RETRY_AFTER_SECONDS),
      });
      return;
    }
    // One proof job per portal (the rest are dropped): it proves an install delivery, or,
    // with none to prove, asks the portal for one (install/lifecycle.ts proveInstalls).
    job = proofJob(ctx, portal, row);
  }
  let outcome;
  try {
    outcome = await ctx.queue.submit({ event: row, job });
  } catch (e) {
    logger.error(
      { err: e, memberId: d.auth.member_id, event: d.event },
      'could not store an event delivery',
    );
    send(res, 503, '{"error":"storage unavailable"}', false, {
      'retry-after': String(STORAGE_RETRY_AFTER_SECONDS),
    });
    return;
  }
  if (outcome.duplicate) {
    metrics.eventsDuplicate.inc({ portal: portal.member_id });
    send(res, 200, OK_DUPLICATE);
    return;
  }
  if (!verified && PROVABLE_EVENTS.has(d.event)) ctx.proofDue(portal);
  if (verified)
    metrics.eventsReceived.inc({
      portal: portal.member_id,
      event: metrics.eventLabel(d.event, () => portalEvents(portal)),
    });
  else metrics.eventsUnverified.inc({ portal: portal.member_id });
  send(res, 200, OK);
}

/**
 * A genuine delivery over its portal's storage budget: not stored (Bitrix24 does not send it
 * again; for CRM events the offline-event net reads the change later), counted, and logged
 * once a minute per portal with the count since.
 */
function refuseOverBudget(
  ctx: IntakeContext,
  res: http.ServerResponse,
  d: Delivery,
  portal: PortalRow,
  budget: ByteBudget,
  waitSeconds: number,
): void {
  ctx.metrics.eventsRejected.inc({ reason: 'portal_bytes' });
  const refused = budget.toLog(portal.id);
  if (refused !== undefined) {
    ctx.logger.warn(
      { memberId: portal.member_id, event: d.event, refused, retryAfterSeconds: waitSeconds },
      "a portal's deliveries are refused: they stored more than PORTAL_INTAKE_MB_PER_HOUR allows",
    );
    ctx.noteRefusals(portal, refused);
  }
  send(res, 429, '{"error":"over the portal\'s storage budget"}', false, {
    'retry-after': String(waitSeconds),
  });
}

/**
 * When a verified event's job first runs. An event about an entity (CRM events carry only
 * its ID) is read a settling time (`EVENT_SETTLE_MS`) after its receipt: Bitrix24's `ts` has
 * one-second resolution, so a later change of the entity within the same second comes as an
 * identical delivery that is only counted, and a read made before that change would miss it
 * for good. Whatever second the first change fell in, it happened before the receipt, so a
 * read a full second after the receipt comes after every change of that second. Events
 * that are not read run at once: the app's own (install, update, uninstall), those naming
 * no entity (ONOFFLINEEVENT) and deletions.
 */
export function firstAttemptAt(
  settleMs: number,
  event: { event: string; entity_id: string | null; received_at: number },
  now = event.received_at,
): number {
  const read =
    event.entity_id !== null && !LIFECYCLE_EVENTS.has(event.event) && !isDeleteEvent(event.event);
  return read ? Math.max(now, event.received_at + settleMs) : now;
}

/**
 * The job of a verified delivery: `lifecycle` for the app's own events, else
 * `process_event`; first due as firstAttemptAt says (`now`: when it is queued). The intake
 * and the verification of deliveries kept unverified (reverify.ts) queue the same job.
 */
export function deliveryJob(
  worker: Deps['config']['worker'],
  event: Pick<IntakeRow['event'], 'event' | 'entity_type' | 'entity_id' | 'received_at'>,
  portalId: number,
  now = event.received_at,
): NonNullable<IntakeRow['job']> {
  return {
    type: LIFECYCLE_EVENTS.has(event.event) ? 'lifecycle' : 'process_event',
    portal_id: portalId,
    entity_key: event.entity_id ? `${portalId}:${event.entity_type}:${event.entity_id}` : null,
    payload: null,
    max_attempts: worker.maxAttempts,
    run_at: firstAttemptAt(worker.settleMs, event, now),
    topic: event.event,
  };
}

/**
 * An unverified install event can prove its own tokens by REST calls to the stored portal.
 * One proof job per portal tries them all; further ones are not queued (the unique partial
 * index of db/migrations/0010-install-proof.ts).
 */
function proofJob(
  ctx: IntakeContext,
  portal: PortalRow,
  row: IntakeRow['event'],
): IntakeRow['job'] {
  return {
    type: 'lifecycle',
    portal_id: portal.id,
    entity_key: proofJobKey(portal.id),
    payload: null,
    max_attempts: ctx.config.worker.maxAttempts,
    run_at: row.received_at,
    detached: true,
  };
}
