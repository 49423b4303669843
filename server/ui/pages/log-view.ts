import type { Knex } from 'knex';
import { heldBehindByEvent, type HeldBehind } from '../../../db/stores/entity-order.js';
import { maskForView } from '../mask-view.js';
import { translateNote } from '../i18n-messages.js';
import type { UiUser } from '../session.js';

/**
 * What a page shows beside an event's status. A skipped or processed event's text is the
 * app's own note (why no rule ran: "no rule matched", a stale trigger), shown as a note in
 * the user's language; any other status's is an error (a failed attempt, a rejection).
 * Notes used to sit under "Last error" and read as failures.
 */
export interface EventDetail {
  kind: 'error' | 'note';
  /** Masked, and translated when it is a note. */
  text: string;
}

export function eventDetail(
  status: string,
  text: string | null | undefined,
  user: UiUser,
  ruleNames: readonly string[],
): EventDetail | null {
  if (!text) return null;
  const masked = maskForView(text);
  return status === 'skipped' || status === 'processed'
    ? { kind: 'note', text: translateNote(masked, user.lang, ruleNames) }
    : { kind: 'error', text: masked };
}

/**
 * The earlier event each of these waits for (per-entity order), its error masked. Only a
 * `received` event can be held (a claimed one is `processing`), so only those are looked up.
 */
export async function heldNotes(
  db: Knex,
  rows: ReadonlyArray<{ id: number; status: string }>,
): Promise<Map<number, HeldBehind>> {
  const waiting = rows.filter((r) => r.status === 'received').map((r) => r.id);
  const held = await heldBehindByEvent(db, waiting);
  for (const h of held.values()) h.lastError = h.lastError && maskForView(h.lastError);
  return held;
}
