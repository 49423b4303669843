import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { deleteSetting, getSetting, putSetting } from '../../db/stores/settings.js';
import type { FinalStatus } from '../../db/stores/retention.js';

/** Settings key (scope: the portal's member_id) of a portal's own retention. */
export const RETENTION_KEY = 'retention';

/** How long a portal's data is kept, in days; 0 keeps it for ever. */
export interface RetentionPolicy {
  /** Processed, skipped and rejected events, UI replays, test sends. */
  days: number;
  /** Failed events. */
  failedDays: number;
}

/** What an admin set for the portal; a missing figure falls back to the configuration. */
export type PortalRetention = Partial<RetentionPolicy>;

export const MAX_RETENTION_DAYS = 36500;
const DAY_MS = 86_400_000;

export function defaultPolicy(config: Config): RetentionPolicy {
  return { days: config.retention.days, failedDays: config.retention.failedDays };
}

export async function portalRetention(db: Knex, memberId: string): Promise<PortalRetention> {
  return (await getSetting<PortalRetention>(db, memberId, RETENTION_KEY)) ?? {};
}

/**
 * Whether a portal may set `days` under the operator's figure `ceiling`: a portal keeps its
 * data for less time than the server, never longer nor for ever, since the disk and the
 * duty to delete are the operator's (an operator walk found any portal admin could keep its
 * log, bodies and replays for ever). Under a server that keeps for ever (0), anything goes.
 */
export function withinCeiling(days: number, ceiling: number): boolean {
  return ceiling === 0 || (days >= 1 && days <= ceiling);
}

/** A figure in effect: the portal's own within the server's `ceiling`, else the ceiling. */
export const capped = (own: number | undefined, ceiling: number): number =>
  own === undefined || !withinCeiling(own, ceiling) ? ceiling : own;

/** Whether `next` days keep less than `now` days (0 keeps for ever). */
export const keepsLess = (next: number, now: number): boolean =>
  next !== 0 && (now === 0 || next < now);

/**
 * The policy a portal runs with: its own figures over the configured ones, within them
 * (figures saved before the ceiling, or over a ceiling lowered since, run as the server's).
 */
export async function effectivePolicy(
  db: Knex,
  config: Config,
  memberId: string,
): Promise<RetentionPolicy> {
  const server = defaultPolicy(config);
  const own = await portalRetention(db, memberId);
  return {
    days: capped(own.days, server.days),
    failedDays: capped(own.failedDays, server.failedDays),
  };
}

/** Saves the portal's own figures; with neither, the portal follows the configuration. */
export async function savePortalRetention(
  db: Knex,
  memberId: string,
  value: PortalRetention,
  now: Date,
): Promise<void> {
  const clean: PortalRetention = {};
  if (value.days !== undefined) clean.days = value.days;
  if (value.failedDays !== undefined) clean.failedDays = value.failedDays;
  if (Object.keys(clean).length === 0) await deleteSetting(db, memberId, RETENTION_KEY);
  else await putSetting(db, memberId, RETENTION_KEY, clean, now);
}

/**
 * Parses a form field: empty means "use the configuration" (undefined); otherwise a whole
 * number of days from 0 to MAX_RETENTION_DAYS, or an error message.
 */
export function parseDays(raw: unknown): { ok: true; days?: number } | { ok: false } {
  const s = String(raw ?? '').trim();
  if (s === '') return { ok: true };
  if (!/^\d{1,5}$/.test(s) || Number(s) > MAX_RETENTION_DAYS) return { ok: false };
  return { ok: true, days: Number(s) };
}

/** `received_at` below which an event in this status goes; null keeps every one. */
export function cutoff(policy: RetentionPolicy, status: FinalStatus, now: number): number | null {
  const days = status === 'failed' ? policy.failedDays : policy.days;
  return days > 0 ? now - days * DAY_MS : null;
}

/** Age limit of the non-event rows (replays, test sends, …); null keeps them. */
export function rowCutoff(policy: RetentionPolicy, now: number): number | null {
  return policy.days > 0 ? now - policy.days * DAY_MS : null;
}
