import type { Deps } from '../deps.js';
import { safeEqual } from '../lib/crypto.js';
import type { Knex } from 'knex';
import {
  listUnverified,
  takeSharedKey,
  updateEvent,
  type EventRow,
} from '../../db/stores/events.js';
import { insertJobs } from '../../db/stores/jobs.js';
import { findPortalById } from '../../db/stores/portals.js';
import { SHARED_KEY_FIELD } from './dedupe-key.js';
import { deliveryJob } from './deliver.js';

export interface ReverifyResult {
  verified: number;
  rejected: number;
  /** Verified, but identical to an event verified before: counted on it and removed. */
  duplicates: number;
}

/**
 * The install race, second half: once a portal's application token is known, every event
 * that arrived before it is verified (→ received, with its job) or rejected. Nothing waiting
 * is dropped silently. The delivered tokens kept for this are erased either way. A verified
 * one takes the key identical deliveries share, or is counted as a duplicate of the event that
 * holds it. One transaction per delivery, its key taken before any rollup is touched: the
 * intake's transactions take the key first and the rollups after, so on PostgreSQL the two
 * never wait for each other (a batch of deliveries in one transaction held one's rollups
 * while waiting for another's key). Two callers at once (the proof job, an install) resolve
 * each delivery once.
 */
export async function resolveUnverified(deps: Deps, portalId: number): Promise<ReverifyResult> {
  const result: ReverifyResult = { verified: 0, rejected: 0, duplicates: 0 };
  const portal = await findPortalById(deps.db, portalId);
  if (!portal?.application_token_digest) return result;
  const digest = portal.application_token_digest;
  for (;;) {
    const batch = await listUnverified(deps.db, portalId, 500);
    if (batch.length === 0) break;
    const now = deps.clock.now().getTime();
    for (const ev of batch) {
      const outcome = await deps.db.transaction((trx) =>
        resolveOne(deps, trx, portalId, ev, digest, now),
      );
      if (outcome) result[outcome]++;
    }
    if (batch.length < 500) break;
  }
  if (result.verified || result.rejected || result.duplicates) {
    deps.logger.info(
      { portalId, ...result },
      'events that arrived before the application token were resolved',
    );
  }
  return result;
}

/** Resolves one unverified delivery; undefined when another caller resolved it first. */
async function resolveOne(
  deps: Deps,
  trx: Knex,
  portalId: number,
  ev: EventRow,
  digest: string,
  now: number,
): Promise<keyof ReverifyResult | undefined> {
  let token = '';
  let shared: unknown;
  try {
    const tokens = JSON.parse(deps.box.decrypt(ev.auth_enc ?? '')) as Record<string, unknown>;
    token = typeof tokens.application_token === 'string' ? tokens.application_token : '';
    shared = tokens[SHARED_KEY_FIELD];
  } catch {
    token = '';
  }
  // Ours to resolve: still unverified with its tokens (the row lock on PostgreSQL; no
  // rollup changes with it).
  const mine = await trx('events')
    .where({ id: ev.id, status: 'unverified' })
    .whereNotNull('auth_enc')
    .update({ auth_enc: null });
  if (!mine) return undefined;
  if (!token || !safeEqual(deps.box.digest(token), digest)) {
    await updateEvent(trx, ev.id, {
      status: 'rejected',
      reject_reason: 'token_mismatch',
      dedupe_key: null,
      processed_at: now,
    });
    return 'rejected';
  }
  // Kept before this key existed (no shared key sealed): its key is the shared one.
  if (typeof shared === 'string' && (await takeSharedKey(trx, ev.id, shared)) === 'duplicate') {
    return 'duplicates';
  }
  await updateEvent(trx, ev.id, { status: 'received' });
  const job = deliveryJob(deps.config.worker, ev, portalId, now);
  await insertJobs(trx, [{ ...job, event_id: ev.id }], now);
  return 'verified';
}
