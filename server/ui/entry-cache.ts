/**
 * Frame entries the portal confirmed lately, per instance: Bitrix24 posts the same AUTH_ID
 * into a user's frames for as long as it lives (AUTH_EXPIRES, an hour), so a user who opens
 * the app again, or a deal tab, within CONFIRMED_ENTRY_MS is let in on the portal's last
 * answer without spending its REST budget again. That is also what keeps the portal's users
 * in while strangers flood it with made-up AUTH_IDs (frame-entry.ts). Keyed by the keyed
 * digest of the token, never the token itself.
 */

/** As long as an admin's rights are taken on the word of the last check (admin-check.ts). */
export const CONFIRMED_ENTRY_MS = 5 * 60_000;
const MAX_ENTRIES = 10_000;

export interface ConfirmedEntry {
  userId: number;
  isAdmin: boolean;
  timeZone: string;
  /** The user's name as `profile` gave it (token-proof.ts). */
  name: string;
  /** When the portal confirmed the token. */
  at: number;
}

const confirmed = new Map<string, ConfirmedEntry>();

export function rememberEntry(key: string, entry: ConfirmedEntry): void {
  confirmed.delete(key);
  confirmed.set(key, entry);
  // The oldest go first (a Map keeps insertion order).
  for (const k of confirmed.keys()) {
    if (confirmed.size <= MAX_ENTRIES) break;
    confirmed.delete(k);
  }
}

export function confirmedEntry(key: string, now: number): ConfirmedEntry | undefined {
  const hit = confirmed.get(key);
  if (!hit) return undefined;
  if (now - hit.at >= CONFIRMED_ENTRY_MS || now < hit.at) {
    confirmed.delete(key);
    return undefined;
  }
  return hit;
}
