import type { Knex } from 'knex';
import { findPortalByMemberId, type PortalRow } from '../db/stores/portals.js';
import { ownString } from './lib/own-string.js';

/**
 * A short-lived in-memory view of portals by member_id for the intake hot path (one SQL
 * round trip per delivery would halve throughput). Whoever changes a portal calls
 * `invalidate`; the TTL bounds staleness for changes made by another process.
 */
export interface PortalDirectory {
  get(memberId: string): Promise<PortalRow | undefined>;
  invalidate(memberId?: string): void;
}

export function createPortalDirectory(db: Knex, now: () => number, ttlMs = 2000): PortalDirectory {
  const cache = new Map<string, { row: PortalRow | undefined; at: number }>();
  const MAX = 10_000;
  return {
    async get(memberId) {
      const hit = cache.get(memberId);
      const t = now();
      if (hit && t - hit.at < ttlMs) return hit.row;
      const row = await findPortalByMemberId(db, memberId);
      if (cache.size >= MAX) cache.clear();
      // Unknown member ids are cached too, so a flood of forged ones costs no queries.
      cache.set(ownString(memberId), { row, at: t });
      return row;
    },
    invalidate(memberId) {
      if (memberId === undefined) cache.clear();
      else cache.delete(memberId);
    },
  };
}
