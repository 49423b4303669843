import { EVENT_STATUSES, type EventStatus } from '../../db/stores/events.js';
import type { LogFilter } from '../../db/stores/event-log.js';
import { NAMED_EVENTS } from './supported-events.js';
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

/** An event as typed: its code in any case, or what it means as the log says it. */
function readEventInput(v: string): string {
  if (/^[A-Za-z0-9_]{2,64}$/.test(v)) return v.toUpperCase();
  const said = v.toLowerCase().replace(/\s+/g, ' ').replace(/[.!]$/, '');
  const named = NAMED_EVENTS.find(
    (e) => e.en.toLowerCase() === said || e.ru.toLowerCase() === said,
  );
  return named ? named.name : v;
}

/** Words a record's type goes by in the log ("Deal 72", "Сделка 72"), to its type. */
const TYPE_WORDS: Readonly<Record<string, string>> = {
  deal: 'deal',
  lead: 'lead',
  contact: 'contact',
  company: 'company',
  quote: 'quote',
  task: 'task',
  activity: 'activity',
  invoice: 'invoice',
  // A smart process's item is stored as `dynamic:<type id>`: its id alone finds it.
  item: '',
  сделка: 'deal',
  лид: 'lead',
  контакт: 'contact',
  компания: 'company',
  предложение: 'quote',
  задача: 'task',
  дело: 'activity',
  счёт: 'invoice',
  счет: 'invoice',
  элемент: '',
};

/**
 * A record as typed in "Record ID": `72`, or as the log's column shows it, `Deal 72`
 * (`deal:72`, `Сделка №72`): its id, and its type when the word names one.
 */
export function readRecordInput(v: string): { id: string; type?: string } | undefined {
  const bare = /^#?([A-Za-z0-9_-]{1,32})$/.exec(v);
  if (bare) return { id: bare[1]! };
  const named = /^(\p{L}+)\s*(?::|#|№|\s)\s*[#№]?\s*(\d{1,20})$/u.exec(v);
  if (!named) return undefined;
  const word = named[1]!.toLowerCase();
  if (!Object.hasOwn(TYPE_WORDS, word)) return undefined;
  const type = TYPE_WORDS[word]!;
  return type ? { id: named[2]!, type } : { id: named[2]! };
}

export function readFilterForm(src: Record<string, unknown>): FilterForm {
  return {
    from: str(src.from, 20),
    to: str(src.to, 20),
    event: readEventInput(str(src.event, 64)),
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
    entityId: readRecordInput(form.entity)?.id,
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
  // Left out, the filter showed every event under a box that still held the value.
  if (form.entity && filter.entityId === undefined) out.push('log.badRecord');
  if (form.event && filter.event === undefined) out.push('log.badEvent');
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
    // "Deal 72" names the type too, unless the type box names one.
    entityType: form.etype || readRecordInput(form.entity)?.type,
    rule: form.rule || undefined,
    statuses: outcome ? OUTCOMES[outcome] : undefined,
    hideEvents: form.all === '1' || base.event !== undefined ? undefined : HOUSEKEEPING_EVENTS,
    linked: form.linked === '1' || undefined,
  };
}
