import type { Deps } from '../deps.js';
import { safeEqual } from '../lib/crypto.js';
import { listUnverified, takeSharedKey, updateEvent } from '../../db/stores/events.js';
import { insertJobs } from '../../db/stores/jobs.js';
import { findPortalById } from '../../db/stores/portals.js';
import { SHARED_KEY_FIELD } from './dedupe-key.js';
import { firstAttemptAt, LIFECYCLE_EVENTS } from './deliver.js';

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
 * holds it.
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
    await deps.db.transaction(async (trx) => {
      const jobs = [];
      for (const ev of batch) {
        let token = '';
        let shared: unknown;
        try {
          const tokens = JSON.parse(deps.box.decrypt(ev.auth_enc ?? '')) as Record<string, unknown>;
          token = typeof tokens.application_token === 'string' ? tokens.application_token : '';
          shared = tokens[SHARED_KEY_FIELD];
        } catch {
          token = '';
        }
        if (token && safeEqual(deps.box.digest(token), digest)) {
          // Kept before this key existed (no shared key sealed): its key is the shared one.
          if (
            typeof shared === 'string' &&
            (await takeSharedKey(trx, ev.id, shared)) === 'duplicate'
          ) {
            result.duplicates++;
            continue;
          }
          await updateEvent(trx, ev.id, { status: 'received', auth_enc: null });
          jobs.push({
            type: LIFECYCLE_EVENTS.has(ev.event)
              ? ('lifecycle' as const)
              : ('process_event' as const),
            event_id: ev.id,
            portal_id: portalId,
            entity_key: ev.entity_id ? `${portalId}:${ev.entity_type}:${ev.entity_id}` : null,
            payload: null,
            max_attempts: deps.config.worker.maxAttempts,
            run_at: firstAttemptAt(deps.config.worker.settleMs, ev, now),
            topic: ev.event,
          });
          result.verified++;
        } else {
          await updateEvent(trx, ev.id, {
            status: 'rejected',
            reject_reason: 'token_mismatch',
            auth_enc: null,
            dedupe_key: null,
            processed_at: now,
          });
          result.rejected++;
        }
      }
      await insertJobs(trx, jobs, now);
    });
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
