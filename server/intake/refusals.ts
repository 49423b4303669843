import type { Knex } from 'knex';
import { getSetting, putSetting } from '../../db/stores/settings.js';

/**
 * Deliveries of a portal refused over its storage budget (byte-budget.ts), kept where the
 * portal's admins see them: the dashboard says how many in the last 24 hours. The log line
 * and the metric are the operator's; an admin whose automation outran the budget had no way
 * to know. Written at most once a minute per portal (with the log line), never per delivery.
 * With several instances each adds its own counts; two writing in the same instant may lose
 * one of them (the figure is then a lower bound).
 */
export const INTAKE_REFUSED_KEY = 'intake_refused';

/** The last day's refusals: how many, since when, and the last one's time (ms). */
export interface IntakeRefusals {
  count: number;
  since: number;
  lastAt: number;
}

const DAY_MS = 86_400_000;

export async function intakeRefusals(
  db: Knex,
  memberId: string,
  now: number,
): Promise<IntakeRefusals | undefined> {
  const r = await getSetting<IntakeRefusals>(db, memberId, INTAKE_REFUSED_KEY);
  return r && now - r.lastAt < DAY_MS ? r : undefined;
}

/** Adds `count` refusals at `now`; a day after the last one, the count starts again. */
export async function addIntakeRefusals(
  db: Knex,
  memberId: string,
  count: number,
  now: number,
): Promise<void> {
  const before = await intakeRefusals(db, memberId, now);
  const next: IntakeRefusals = before
    ? { count: before.count + count, since: before.since, lastAt: now }
    : { count, since: now, lastAt: now };
  await putSetting(db, memberId, INTAKE_REFUSED_KEY, next, new Date(now));
}
