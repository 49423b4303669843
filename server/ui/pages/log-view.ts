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
