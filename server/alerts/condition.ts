import type { AlertKind, AlertStateRow } from '../../db/stores/alerts.js';
import type { AlertPhase } from './types.js';

/** What a check measured for one condition. */
export interface ConditionReading {
  key: string;
  kind: AlertKind;
  memberId: string | null;
  /** The condition holds now (e.g. backlog above the threshold). */
  bad: boolean;
  /**
   * A firing condition counts as over only when this holds. For the backlog it is a lower
   * bar than `!bad` (hysteresis), so a backlog hovering at the threshold does not flap.
   */
  recovered: boolean;
  /** How long the condition must hold before it fires. @default 0 */
  graceMs?: number;
  /** Recover without a notice (the portal was uninstalled). */
  silent?: boolean;
  /** The figures, kept with the state and shown on the dashboard. */
  details: unknown;
}

export type NextState = Omit<AlertStateRow, 'version'>;

/**
 * The state machine of one condition, a pure function of the stored state, the reading, the
 * time and the cooldown:
 * - ok → firing when the condition held for `graceMs`, but never sooner than one cooldown
 *   after the last message (a recovered condition does not re-fire at once);
 * - firing → a reminder each cooldown while the condition still holds;
 * - firing → ok with a recovery notice once `recovered`.
 * `next` is undefined when nothing needs writing.
 */
export function stepCondition(
  prev: AlertStateRow | undefined,
  reading: ConditionReading,
  now: number,
  cooldownMs: number,
): { next: NextState | undefined; phase: AlertPhase | undefined } {
  const details = JSON.stringify(reading.details ?? null);
  const base: NextState = {
    key: reading.key,
    kind: reading.kind,
    member_id: reading.memberId,
    state: prev?.state ?? 'ok',
    pending_since: prev?.pending_since ?? null,
    fired_at: prev?.fired_at ?? null,
    last_sent_at: prev?.last_sent_at ?? null,
    cursor: prev?.cursor ?? null,
    details: prev?.details ?? null,
    updated_at: now,
  };
  const cooled = base.last_sent_at === null || now - base.last_sent_at >= cooldownMs;

  if (base.state === 'firing') {
    if (reading.recovered) {
      if (reading.silent) {
        return {
          next: { ...base, state: 'ok', pending_since: null, details },
          phase: undefined,
        };
      }
      return {
        next: { ...base, state: 'ok', pending_since: null, last_sent_at: now, details },
        phase: 'recovered',
      };
    }
    if (reading.bad && cooled) {
      return { next: { ...base, last_sent_at: now, details }, phase: 'reminder' };
    }
    return { next: undefined, phase: undefined };
  }

  if (!reading.bad) {
    return prev && prev.pending_since !== null
      ? { next: { ...base, pending_since: null }, phase: undefined }
      : { next: undefined, phase: undefined };
  }
  const since = base.pending_since ?? now;
  if (now - since >= (reading.graceMs ?? 0) && cooled && !reading.silent) {
    return {
      next: {
        ...base,
        state: 'firing',
        pending_since: null,
        fired_at: now,
        last_sent_at: now,
        details,
      },
      phase: 'firing',
    };
  }
  return base.pending_since === since && prev
    ? { next: undefined, phase: undefined }
    : { next: { ...base, pending_since: since }, phase: undefined };
}
