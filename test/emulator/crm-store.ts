import type { CrmItem, MultiFieldValue } from './types.js';
import { isRecord } from './http-util.js';

/**
 * Bitrix24 returns dates as ISO 8601 in the portal's time zone with its offset, e.g.
 * `2024-04-03T10:26:32+02:00` (DOCS:limits.md's `date_start`, the crm.deal.get examples);
 * the fixed +03:00 here is a choice, not a source.
 */
const OFFSET_MIN = 180;

export function formatBitrixDate(ms: number): string {
  const d = new Date(ms + OFFSET_MIN * 60_000);
  const pad = (n: number): string => String(n).padStart(2, '0');
  const sign = OFFSET_MIN >= 0 ? '+' : '-';
  const off = Math.abs(OFFSET_MIN);
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` +
    `${sign}${pad(Math.floor(off / 60))}:${pad(off % 60)}`
  );
}

/** List methods return pages of 50 with `total` and `next` (CORE classes/general/rest.php
 * `IRestService::LIST_LIMIT`; DOCS:settings/how-to-call-rest-api/list-methods-pecularities.md). */
export const LIST_PAGE = 50;
const MULTI_FIELDS = ['PHONE', 'EMAIL', 'WEB', 'IM'] as const;

export interface EntityStore {
  readonly items: Map<string, CrmItem>;
  add(fields: Record<string, unknown>, userId: number): CrmItem;
  /**
   * The record after the update, and whether it was saved: always, except for a type saved
   * only when something changed (`savedOnlyWhenChanged`), where an update that changes no
   * value saves nothing and sends no event.
   */
  update(
    id: string,
    fields: Record<string, unknown>,
    userId: number,
  ): { item: CrmItem; saved: boolean } | undefined;
  remove(id: string): boolean;
  get(id: string): CrmItem | undefined;
  list(params: ListParams): ListPage;
}

export interface ListParams {
  filter?: unknown;
  order?: unknown;
  select?: unknown;
  start?: unknown;
}

export interface ListPage {
  items: CrmItem[];
  total?: number;
  next?: number;
}

export interface EntityDefinition {
  /** Fields of a new record before the caller's fields are applied. */
  defaults(id: string, userId: number, date: string): Record<string, unknown>;
  /** Derived fields recomputed after every change (e.g. deal STAGE_SEMANTIC_ID). */
  derive?(item: CrmItem): void;
  /**
   * An update that changes no value is not saved: no DATE_MODIFY, no ONCRM…UPDATE. Deals,
   * leads, contacts, companies and quotes are saved through the item factory on every
   * portal (CORE crm classes/general/crm_deal.php `Update` → `isUseOperation`, the
   * `<type>_enable_factory` setting true by default: lib/settings/traits/enablefactory.php;
   * quotes always, lib/settings/quotesettings.php), whose update operation stops before the
   * save and its events when the item did not change (lib/Service/Operation.php, "no
   * changes - no actions"). Activities and old invoices are saved as asked.
   */
  savedOnlyWhenChanged?: boolean;
}

/** Scalars become strings as Bitrix24 returns them; OPPORTUNITY keeps two decimals (the
 * crm.deal.get doc example; `Y`/`N` for booleans likewise). */
function normalizeScalar(key: string, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (key === 'OPPORTUNITY' || key === 'TAX_VALUE') return Number(value).toFixed(2);
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'Y' : 'N';
  return value;
}

function mergeMultiField(
  typeId: string,
  current: unknown,
  incoming: unknown,
  nextId: () => string,
): MultiFieldValue[] {
  const out: MultiFieldValue[] = Array.isArray(current) ? [...(current as MultiFieldValue[])] : [];
  const list = Array.isArray(incoming)
    ? incoming
    : isRecord(incoming)
      ? Object.values(incoming)
      : [];
  for (const raw of list) {
    if (!isRecord(raw)) continue;
    const value = raw['VALUE'] === undefined ? undefined : String(raw['VALUE']);
    const id = raw['ID'] === undefined ? undefined : String(raw['ID']);
    const idx = id === undefined ? -1 : out.findIndex((m) => m.ID === id);
    if (idx >= 0) {
      if (value === '') out.splice(idx, 1);
      else if (value !== undefined) out[idx] = { ...out[idx]!, VALUE: value };
      continue;
    }
    if (!value) continue;
    out.push({
      ID: nextId(),
      VALUE_TYPE: typeof raw['VALUE_TYPE'] === 'string' ? raw['VALUE_TYPE'] : 'WORK',
      VALUE: value,
      TYPE_ID: typeId,
    });
  }
  return out;
}

export function createEntityStore(
  def: EntityDefinition,
  now: () => number,
  nextMultiId: () => string,
): EntityStore {
  const items = new Map<string, CrmItem>();
  let lastId = 0;

  const apply = (item: CrmItem, fields: Record<string, unknown>): void => {
    for (const [rawKey, value] of Object.entries(fields)) {
      const key = rawKey.toUpperCase();
      if (key === 'ID') continue;
      if ((MULTI_FIELDS as readonly string[]).includes(key)) {
        const merged = mergeMultiField(key, item[key], value, nextMultiId);
        // A multi-field with no value left is not in the answer at all: they "are explicitly
        // returned by this method only if the values of this field are not equal to `null`"
        // (DOCS:api-reference/crm/contacts/crm-contact-get.md), not as an empty list.
        if (merged.length > 0) item[key] = merged;
        else delete item[key];
        item[`HAS_${key}`] = merged.length > 0 ? 'Y' : 'N';
      } else {
        item[key] = normalizeScalar(key, value);
      }
    }
    def.derive?.(item);
  };

  return {
    items,
    add(fields, userId) {
      lastId += 1;
      const id = String(lastId);
      const item = { ...def.defaults(id, userId, formatBitrixDate(now())), ID: id } as CrmItem;
      apply(item, fields);
      items.set(id, item);
      return item;
    },
    update(id, fields, userId) {
      const item = items.get(id);
      if (!item) return undefined;
      const before = JSON.stringify(item);
      apply(item, fields);
      def.derive?.(item);
      const saved = !def.savedOnlyWhenChanged || JSON.stringify(item) !== before;
      if (saved) {
        item['DATE_MODIFY'] = formatBitrixDate(now());
        item['MODIFY_BY_ID'] = String(userId);
      }
      return { item, saved };
    },
    remove(id) {
      return items.delete(id);
    },
    get(id) {
      return items.get(id);
    },
    list(params) {
      const filter = isRecord(params.filter) ? params.filter : {};
      const matched = [...items.values()].filter((item) => matchesFilter(item, filter));
      sortItems(matched, isRecord(params.order) ? params.order : { ID: 'ASC' });
      const startNum = Number(params.start ?? 0);
      const noCount = startNum === -1;
      const start = noCount || !Number.isFinite(startNum) || startNum < 0 ? 0 : startNum;
      const page = matched.slice(start, start + LIST_PAGE).map((i) => project(i, params.select));
      if (noCount) return { items: page };
      const result: ListPage = { items: page, total: matched.length };
      if (start + LIST_PAGE < matched.length) result.next = start + LIST_PAGE;
      return result;
    },
  };
}

/**
 * Compares as numbers, as dates for DATE_* fields, else as strings. A date filter value is an
 * instant, its offset included: the core reads it with `strtotime` (CORE rest
 * classes/general/rest_util.php, `CRestUtil::unConvertDateTime`). crm.deal.list and the other
 * old lists add the user's time-zone offset there (`unConvertDateTime($v, true)`, crm
 * classes/general/restservice.php) that their SQL takes off again (CTimeZone), crm.item.list
 * adds none (crm lib/controller/base.php, `prepareDateTimeFieldsForFilter`): either way
 * `2026-11-27T10:00:00+00:00` means 10:00 UTC, whatever the user's zone.
 */
function compare(field: string, a: unknown, b: unknown): number {
  const sa = a === null || a === undefined ? '' : String(a);
  const sb = b === null || b === undefined ? '' : String(b);
  if (/^-?\d+(\.\d+)?$/.test(sa) && /^-?\d+(\.\d+)?$/.test(sb)) return Number(sa) - Number(sb);
  if (
    field.startsWith('DATE_') ||
    field.endsWith('DATE') ||
    field.endsWith('_TIME') ||
    /[a-z](Time|Date)$/.test(field)
  ) {
    const da = Date.parse(sa);
    const db = Date.parse(sb);
    if (!Number.isNaN(da) && !Number.isNaN(db)) return da - db;
  }
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

const FILTER_OPS = ['>=', '<=', '!=', '!@', '=%', '%=', '>', '<', '=', '!', '@', '%'] as const;
type FilterOp = (typeof FILTER_OPS)[number];

function listOf(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  return isRecord(value) ? Object.values(value) : [value];
}

/** One filter condition; an array value means "any of" (`@` and plain `=` alike). */
function matchesOne(field: string, op: FilterOp, actual: unknown, expected: unknown): boolean {
  const anyEqual = (): boolean => listOf(expected).some((v) => compare(field, actual, v) === 0);
  const text = String(actual ?? '').toLowerCase();
  const needle = String(expected ?? '').toLowerCase();
  switch (op) {
    case '>=':
      return compare(field, actual, expected) >= 0;
    case '<=':
      return compare(field, actual, expected) <= 0;
    case '>':
      return compare(field, actual, expected) > 0;
    case '<':
      return compare(field, actual, expected) < 0;
    case '!=':
    case '!':
    case '!@':
      return !anyEqual();
    case '%':
      return text.includes(needle);
    case '=%':
    case '%=':
      return new RegExp(`^${needle.split('%').map(escapeRe).join('.*')}$`).test(text);
    case '=':
    case '@':
      return anyEqual();
  }
}

/**
 * Filter prefixes as DOCS:api-reference/crm/deals/crm-deal-list.md lists them (`>`, `>=`, `<`,
 * `<=`, `@`, `!`, `%`, `=`); only the ones a CRM app uses are modelled.
 * `{'>DATE_MODIFY': …, '@ID': [..], STAGE_ID: 'WON'}`; `keyOf` maps a filter field to the
 * record's key (upper case for `crm.deal.*`, camelCase for `crm.item.*`).
 */
export function matchesFilter(
  item: Record<string, unknown>,
  filter: Record<string, unknown>,
  keyOf: (field: string) => string = (f) => f.toUpperCase(),
): boolean {
  return Object.entries(filter).every(([rawKey, expected]) => {
    const op = FILTER_OPS.find((o) => rawKey.startsWith(o)) ?? '=';
    const field = keyOf(rawKey.slice(rawKey.startsWith(op) ? op.length : 0));
    return matchesOne(field, op, item[field], expected);
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function sortItems(
  list: Array<Record<string, unknown>>,
  order: Record<string, unknown>,
  keyOf: (field: string) => string = (f) => f.toUpperCase(),
): void {
  const keys = Object.entries(order).map(
    ([k, v]) => [keyOf(k), String(v).toUpperCase() === 'DESC' ? -1 : 1] as const,
  );
  list.sort((a, b) => {
    for (const [field, dir] of keys) {
      const c = compare(field, a[field], b[field]);
      if (c !== 0) return c * dir;
    }
    return 0;
  });
}

/**
 * `select`: `*` is every plain field (no UF_, no multi-fields), `UF_*` the custom fields;
 * the default is both. ID is always returned. (DOCS crm-deal-list.md describes `*` and
 * `UF_*`; "ID always" and the default are our reading.)
 */
function project(item: CrmItem, select: unknown): CrmItem {
  const wanted = (Array.isArray(select) ? select : isRecord(select) ? Object.values(select) : [])
    .map((s) => String(s).toUpperCase())
    .filter((s) => s.length > 0);
  const fields = wanted.length > 0 ? wanted : ['*', 'UF_*'];
  const out: CrmItem = { ID: item.ID };
  for (const [key, value] of Object.entries(item)) {
    const isUf = key.startsWith('UF_');
    const isMulti = (MULTI_FIELDS as readonly string[]).includes(key);
    if (
      fields.includes(key) ||
      (fields.includes('*') && !isUf && !isMulti) ||
      (fields.includes('UF_*') && isUf)
    ) {
      out[key] = value;
    }
  }
  return out;
}
