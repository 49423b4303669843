import { hash } from 'node:crypto';
import type { Delivery } from './event-body.js';

/**
 * The key identical deliveries share (same portal, event, ts and data), at most 64
 * characters: `ts` in base 36, the entity id, then as much of sha256(member, event, ts,
 * data) as fits. A purely random key would land each new delivery on a random page of the
 * unique index, so every row of a group commit would write its own index page; keys led by
 * the event time and entity go to the index's newest pages, a few for a whole batch.
 */
export function dedupeKey(d: Delivery, dataJson: string, entityId: string | null): string {
  const digest = hash(
    'sha256',
    `${d.auth.member_id}\n${d.event}\n${d.ts ?? ''}\n${dataJson}`,
    'base64url',
  );
  const time = d.ts === undefined ? '' : Math.max(0, Math.floor(d.ts)).toString(36);
  const entity = (entityId ?? '').slice(0, 20);
  // 43 digest characters are 256 bits; with the longest prefix at least 34 (204 bits) stay.
  const prefix = `${time.padStart(8, '0')}.${entity}.`;
  return prefix + digest.slice(0, 64 - prefix.length);
}

/** Where an unverified delivery's sealed tokens keep its shared key. */
export const SHARED_KEY_FIELD = 'dedupe_key';

/**
 * The key of a delivery kept `unverified` (its portal's application token is not known yet):
 * the shared key with a digest of the delivered application token in its tail. Anyone who
 * knows a member_id can post before the token is known, so a forged copy of a delivery that
 * is still to come (same event, ts and data, another token) must not take the genuine one's
 * key and have it answered as a duplicate: the forged copy is rejected at verification, and
 * the genuine one would be gone with it. Identical deliveries with the same token still
 * share a key; a verified one takes the shared key (server/intake/reverify.ts).
 */
export function unverifiedDedupeKey(shared: string, applicationToken: string): string {
  const tail = hash('sha256', `${applicationToken}\n${shared}`, 'base64url').slice(0, 11);
  return `${shared.slice(0, 64 - tail.length - 1)}~${tail}`;
}
