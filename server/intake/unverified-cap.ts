import type { Knex } from 'knex';
import {
  expireUnverified,
  unverifiedLoad,
  type UnverifiedLoad,
} from '../../db/stores/unverified.js';

/**
 * Bounds on what a portal may hold `unverified` (deliveries that arrived before its
 * application token was known). Anyone can post under a portal's member_id in that window,
 * so without a bound a flood would fill the disk and, for ONAPPINSTALL and ONAPPTEST, cost the
 * portal one REST probe per post. Past a bound the intake answers 503 with Retry-After and counts it.
 */

/** An unverified delivery not verified within this time is rejected as expired. */
export const UNVERIFIED_TTL_MS = 60 * 60_000;
/** Most unverified deliveries per portal. */
export const UNVERIFIED_MAX_COUNT = 500;
/** Most stored bytes (masked bodies) of unverified deliveries per portal. */
export const UNVERIFIED_MAX_BYTES = 2 * 1024 * 1024;
/** Most unverified ONAPPINSTALL and ONAPPTEST posts per portal: each costs a REST probe. */
export const UNVERIFIED_MAX_INSTALLS = 10;
/** What a refused sender is told to wait. */
export const UNVERIFIED_RETRY_AFTER_SECONDS = 60;
/** The entity key of a portal's proof job: at most one is pending (migration 0010). */
export const proofJobKey = (portalId: number): string => `proof:${portalId}`;

/** How long a portal's counts are trusted before they are read again (and expiry runs). */
const RELOAD_MS = 10_000;
/**
 * A delivery about to be refused re-reads counts older than this first: the proof job may
 * have rejected (or verified) the ones counted, and a refusal is never re-sent by Bitrix24.
 */
const RECHECK_MS = 1000;

export type CapRefusal = 'count' | 'bytes' | 'installs';

export interface UnverifiedCap {
  /**
   * Reserves room for one more unverified delivery of the portal (`bytes` stored), or says
   * which bound it would cross. An install counts against its own, smaller bound only.
   */
  admit(portalId: number, bytes: number, install: boolean): Promise<CapRefusal | null>;
}

export function createUnverifiedCap(db: Knex, now: () => number): UnverifiedCap {
  const loads = new Map<number, { load: UnverifiedLoad; at: number }>();
  const loading = new Map<number, Promise<UnverifiedLoad>>();

  async function current(portalId: number, maxAgeMs = RELOAD_MS): Promise<UnverifiedLoad> {
    const t = now();
    const known = loads.get(portalId);
    if (known && t - known.at < maxAgeMs) return known.load;
    let pending = loading.get(portalId);
    if (!pending) {
      pending = (async () => {
        await expireUnverified(db, portalId, t - UNVERIFIED_TTL_MS, t);
        return unverifiedLoad(db, portalId);
      })().finally(() => loading.delete(portalId));
      loading.set(portalId, pending);
    }
    const load = await pending;
    // Reservations made while it loaded are in the database count or still in flight; the
    // next reload corrects either way.
    const entry = loads.get(portalId);
    if (!entry || entry.at < t) loads.set(portalId, { load: { ...load }, at: t });
    return loads.get(portalId)!.load;
  }

  // An install is held to its own bound only: it is what makes the portal's token known,
  // and Bitrix24 sends it once, so forged deliveries of other events filling the shared
  // bounds must not lock it out (ten installs add at most ten bodies to those bounds).
  const over = (load: UnverifiedLoad, bytes: number, install: boolean): CapRefusal | null => {
    if (install) return load.installs + 1 > UNVERIFIED_MAX_INSTALLS ? 'installs' : null;
    if (load.count + 1 > UNVERIFIED_MAX_COUNT) return 'count';
    if (load.bytes + bytes > UNVERIFIED_MAX_BYTES) return 'bytes';
    return null;
  };

  return {
    async admit(portalId, bytes, install) {
      let load = await current(portalId);
      if (over(load, bytes, install)) load = await current(portalId, RECHECK_MS);
      const refusal = over(load, bytes, install);
      if (refusal) return refusal;
      load.count++;
      load.bytes += bytes;
      if (install) load.installs++;
      return null;
    },
  };
}
