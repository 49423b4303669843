import type { Knex } from 'knex';
import { heldBehindByEvent, type HeldBehind } from '../../../db/stores/entity-order.js';
import type { PortalRow } from '../../../db/stores/portals.js';
import { within } from '../../lib/within.js';
import { describeStep, plain, type MapWords, type StageNames } from '../../rules/describe.js';
import type { EventMap, Rule } from '../../rules/model.js';
import { maskMap } from '../../rules/secret-fields.js';
import type { SecretBox } from '../../lib/crypto.js';
import type { MetadataCache } from '../../rules/metadata.js';
import { maskForView } from '../mask-view.js';
import { readableNote, type NoteNames } from '../note-names.js';
import { translateError } from '../i18n-messages.js';
import type { UiUser } from '../session.js';
import { stageNames } from './rules-table.js';

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
  names: NoteNames,
): EventDetail | null {
  if (!text) return null;
  const masked = maskForView(text);
  return status === 'skipped' || status === 'processed'
    ? { kind: 'note', text: readableNote(masked, user.lang, ruleNames, names) }
    : { kind: 'error', text: translateError(masked, user.lang) };
}

/** How long a portal whose stage list could not be read is not asked again for the log. */
const FAILED_STAGES_MS = 60_000;
/** Portals remembered as failing, at most (the oldest are forgotten first). */
const FAILED_STAGES_MAX = 1000;

/** The portal's deal and lead stage names for notes, or undefined; see noteStagesLookup. */
export type NoteStages = (
  portal: PortalRow,
  texts: ReadonlyArray<string | null | undefined>,
  ms: number,
) => Promise<StageNames | undefined>;

/**
 * The portal's stage names for notes that compare a deal's or a lead's stage, a quote's or an
 * old invoice's status (`STAGE_ID is "WON"`, `STATUS_ID is "CONVERTED"`, `STATUS_ID is "P"`),
 * from the metadata cache the map page and the builder
 * share (one read of the portal per few minutes, within its REST budget). A page waits at most `ms` for them: a slow portal
 * leaves the codes, never the page; a portal whose read failed is not asked again for a
 * minute (every manager's view of the log would try again).
 */
export function noteStagesLookup(
  metadata: MetadataCache | undefined,
  now: () => number,
): NoteStages {
  const failed = new Map<number, number>();
  return async (portal, texts, ms) => {
    if (!metadata || !texts.some((t) => t && /(?:^|[ :(.])(?:STAGE|STATUS)_ID /.test(t))) {
      return undefined;
    }
    const at = failed.get(portal.id);
    if (at !== undefined && now() - at < FAILED_STAGES_MS) return undefined;
    failed.delete(portal.id);
    const load = metadata.get(portal).catch((e: unknown) => {
      failed.set(portal.id, now());
      if (failed.size > FAILED_STAGES_MAX) failed.delete(failed.keys().next().value!);
      throw e;
    });
    const meta = await within(load, ms);
    return meta ? stageNames(meta) : undefined;
  };
}

/**
 * The earlier event each of these waits for (per-entity order), its error masked and in the
 * page's language, as the event's own page says it. Only a `received` event can be held (a
 * claimed one is `processing`), so only those are looked up.
 */
export async function heldNotes(
  db: Knex,
  rows: ReadonlyArray<{ id: number; status: string }>,
  lang: UiUser['lang'],
): Promise<Map<number, HeldBehind>> {
  const waiting = rows.filter((r) => r.status === 'received').map((r) => r.id);
  const held = await heldBehindByEvent(db, waiting);
  for (const h of held.values()) {
    h.lastError = h.lastError && translateError(maskForView(h.lastError), lang);
  }
  return held;
}

/**
 * Where a run's step goes, in the rules page's words ("POST to erp.example", "Comment in the
 * deal's timeline"), from the portal's map as it is now: the step at the run's place in its
 * rule, if it is still of the run's type; undefined otherwise (the page then names the type).
 * The event page and the deal tab said "Bitrix24 method" of a step the builder and the rules
 * page call a timeline comment (found in a walk).
 */
export function stepWhere(
  map: EventMap,
  words: MapWords,
  box: SecretBox,
): (run: { rule_name: string; step_index: number; action_type: string }) => string | undefined {
  const rules = new Map(map.rules.map((r) => [r.name, r]));
  // Only the rules a page's runs name are masked (as the rules page shows them: a sealed URL
  // by its host), each once: not a copy of the whole map at each deal tab refresh.
  const shown = new Map<string, Rule | undefined>();
  const masked = (name: string) => {
    if (!shown.has(name)) {
      const rule = rules.get(name);
      shown.set(name, rule && maskMap({ rules: [rule] }, box).rules[0]);
    }
    return shown.get(name);
  };
  return (run) => {
    const rule = masked(run.rule_name);
    const action = rule?.actions[Number(run.step_index)];
    return action && action.type === run.action_type
      ? plain(describeStep(action, words, rule))
      : undefined;
  };
}

/** A rule match's badge on the event page: its status, and the word shown for it. */
export interface MatchBadge {
  status: string;
  /** Empty: the status's own word. */
  label: '' | 'match.stepFailed' | 'match.notRun' | 'match.waiting' | 'run.willRetry';
}

/**
 * What became of a matched rule, for its badge. A match stays `matched` until its last step
 * is settled, so a rule whose step failed for good read "matched" beside the failed step (a
 * Russian walk read «совпало» as "it worked"). Judged on the rule's runs of the latest
 * processing of the event (a replay may start a new generation); `eventStatus` tells a failure for good from
 * one that will be retried.
 */
export function matchBadge(
  match: { rule_name: string; status: string },
  runs: ReadonlyArray<{
    rule_name: string;
    generation: number;
    status: string;
    step_index: number;
  }>,
  eventStatus: string,
  /** Whether the rule's step at that place goes on after a failure (`continueOnError`). */
  continues: (rule: string, step: number) => boolean = () => false,
): MatchBadge {
  if (match.status !== 'matched') return { status: match.status, label: '' };
  // The event's latest processing, not this rule's: a replay that re-ran succeeded steps
  // and failed on an earlier rule never reached this one, whose old failure is not its news.
  const latest = Math.max(-Infinity, ...runs.map((r) => Number(r.generation)));
  const failed = runs.some(
    (r) =>
      r.rule_name === match.rule_name &&
      Number(r.generation) === latest &&
      r.status === 'failed' &&
      // A step that continues on error is not retried: the rule went on past it.
      !continues(r.rule_name, Number(r.step_index)),
  );
  const waiting = ['received', 'processing'].includes(eventStatus);
  if (failed && waiting) return { status: 'failed', label: 'run.willRetry' };
  if (failed) return { status: 'failed', label: 'match.stepFailed' };
  // The event ended and this rule's steps never ran (an earlier rule's step failed).
  if (eventStatus === 'failed') return { status: 'pending', label: 'match.notRun' };
  if (waiting) {
    // Not "matched" while the event waits: a walk read it as done beside a retrying rule.
    const started = runs.some(
      (r) => r.rule_name === match.rule_name && Number(r.generation) === latest,
    );
    return started
      ? { status: 'running', label: '' }
      : { status: 'pending', label: 'match.waiting' };
  }
  return { status: 'matched', label: '' };
}
