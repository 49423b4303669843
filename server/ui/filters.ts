import { EVENT_STATUSES, type EventStatus } from '../../db/stores/events.js';
import type { LogFilter } from '../../db/stores/event-log.js';
import { zonedToUtc } from './time.js';

/** The log / replay filter as typed in the form (kept to fill the form again). */
export interface FilterForm {
  from: string;
  to: string;
  event: string;
  status: string;
  entity: string;
  q: string;
}

const str = (v: unknown, max = 200): string =>
  typeof v === 'string' ? v.trim().slice(0, max) : '';

/**
 * `2026-05-01` or `2026-05-01T10:30`, a wall-clock time in the user's zone, to ms. A date
 * alone as an upper bound means the end of that day (the next local midnight).
 */
export function parseDateInput(v: string, endOfDay: boolean, zone = 'UTC'): number | undefined {
  if (!v) return undefined;
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(v);
  if (!dateOnly && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(v)) return undefined;
  const local = Date.parse(dateOnly ? `${v}T00:00:00Z` : `${v}Z`);
  if (Number.isNaN(local)) return undefined;
  return zonedToUtc(dateOnly && endOfDay ? local + 86_400_000 : local, zone);
}

export function readFilterForm(src: Record<string, unknown>): FilterForm {
  return {
    from: str(src.from, 20),
    to: str(src.to, 20),
    event: str(src.event, 64).toUpperCase(),
    status: str(src.status, 16),
    entity: str(src.entity, 32),
    q: str(src.q, 100),
  };
}

/**
 * The store filter for one portal; values that do not parse are ignored. Dates are read in
 * the user's time zone.
 */
export function toLogFilter(form: FilterForm, portalId: number, zone = 'UTC'): LogFilter {
  return {
    portalId,
    from: parseDateInput(form.from, false, zone),
    to: parseDateInput(form.to, true, zone),
    event: /^[A-Z0-9_]{2,64}$/.test(form.event) ? form.event : undefined,
    status: (EVENT_STATUSES as readonly string[]).includes(form.status)
      ? (form.status as EventStatus)
      : undefined,
    entityId: /^[A-Za-z0-9_-]{1,32}$/.test(form.entity) ? form.entity : undefined,
    text: form.q || undefined,
  };
}

/**
 * What in the filter cannot be used as typed (message keys): a date that does not parse (it
 * is left out of the filter), a "From" after the "To" (nothing can match). Said above the
 * results, which alone read "No events match".
 */
export function filterProblems(form: FilterForm, filter: LogFilter): string[] {
  const out: string[] = [];
  if ((form.from && filter.from === undefined) || (form.to && filter.to === undefined)) {
    out.push('log.badDate');
  }
  if (filter.from !== undefined && filter.to !== undefined && filter.from >= filter.to) {
    out.push('log.fromAfterTo');
  }
  return out;
}

/** The form as query parameters (empty ones left out), for links that keep the filter. */
export function filterParams(form: FilterForm): Record<string, string> {
  return Object.fromEntries(Object.entries(form).filter(([, v]) => v !== '')) as Record<
    string,
    string
  >;
}

/**
 * What a manager asks of the log beyond the shared filter: a rule, an outcome, and whether
 * the app's own lifecycle and offline-queue events are shown (`all=1`).
 */
export interface LogForm extends FilterForm {
  /** The record type (`deal`, `contact`, `dynamic:128`…): entity ids repeat across types. */
  etype: string;
  rule: string;
  outcome: string;
  all: string;
  /** `1`: with the record's type and id, the events of records made in it too (a deal's calls). */
  linked: string;
}

/** Outcomes a manager filters by, each a set of event statuses. */
export const OUTCOMES = {
  done: ['processed'],
  failed: ['failed'],
  nothing: ['skipped'],
  waiting: ['received', 'processing', 'unverified'],
  rejected: ['rejected'],
} as const satisfies Record<string, readonly EventStatus[]>;
export type Outcome = keyof typeof OUTCOMES;

/**
 * Events about the app itself, hidden from the log unless asked for: install, update,
 * uninstall and ONOFFLINEEVENT (the portal's note that offline events wait:
 * https://apidocs.bitrix24.com/api-reference/events/offline-events.html).
 */
export const HOUSEKEEPING_EVENTS = [
  'ONAPPINSTALL',
  'ONAPPUPDATE',
  'ONAPPUNINSTALL',
  'ONAPPTEST',
  'ONOFFLINEEVENT',
] as const;

/** Record types the log's type filter offers (smart-process items come as `dynamic:<id>`). */
export const ENTITY_TYPES = [
  'deal',
  'lead',
  'contact',
  'company',
  'quote',
  'task',
  'activity',
  'invoice',
] as const;
/** A type the filter keeps: one of ENTITY_TYPES, or a smart process (`dynamic:<id>`). */
const isEntityType = (t: string): boolean =>
  (ENTITY_TYPES as readonly string[]).includes(t) || /^dynamic(?::\d{1,10})?$/.test(t);

export function readLogForm(src: Record<string, unknown>): LogForm {
  const etype = str(src.etype, 32).toLowerCase();
  return {
    ...readFilterForm(src),
    etype: isEntityType(etype) ? etype : '',
    rule: str(src.rule, 255),
    outcome: str(src.outcome, 16),
    all: src.all === '1' ? '1' : '',
    linked: src.linked === '1' ? '1' : '',
  };
}

/** The log's store filter: hides housekeeping events unless shown or asked for by name. */
export function toLogPageFilter(form: LogForm, portalId: number, zone = 'UTC'): LogFilter {
  const base = toLogFilter(form, portalId, zone);
  const outcome = Object.hasOwn(OUTCOMES, form.outcome) ? (form.outcome as Outcome) : undefined;
  return {
    ...base,
    entityType: form.etype || undefined,
    rule: form.rule || undefined,
    statuses: outcome ? OUTCOMES[outcome] : undefined,
    hideEvents: form.all === '1' || base.event !== undefined ? undefined : HOUSEKEEPING_EVENTS,
    linked: form.linked === '1' || undefined,
  };
}
