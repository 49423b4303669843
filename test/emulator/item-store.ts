import { formatBitrixDate, LIST_PAGE, matchesFilter, sortItems } from './crm-store.js';
import { isRecord } from './http-util.js';

/**
 * A smart-process item as `crm.item.get` returns it: camelCase keys, numbers for ids and
 * amounts, `entityTypeId` on the record (DOCS:api-reference/crm/universal/crm-item-get.md,
 * object-fields.md).
 */
export type SmartItem = Record<string, unknown> & { id: number; entityTypeId: number };

export interface ItemListPage {
  items: SmartItem[];
  /** Absent with `start=-1` (no count). */
  total?: number;
  next?: number;
}

/** Items of every smart-process type on one portal, keyed by `entityTypeId`. */
export interface ItemStore {
  readonly types: ReadonlyMap<number, ReadonlyMap<string, SmartItem>>;
  add(entityTypeId: number, fields: Record<string, unknown>, userId: number): SmartItem;
  /** The item after the change and whether any value changed, or undefined when unknown. */
  update(
    entityTypeId: number,
    id: string,
    fields: Record<string, unknown>,
    userId: number,
  ): { item: SmartItem; changed: boolean } | undefined;
  get(entityTypeId: number, id: string): SmartItem | undefined;
  list(entityTypeId: number, filter: unknown, start: unknown, order?: unknown): ItemListPage;
}

/**
 * A field's REST name (DOCS:api-reference/crm/universal/index.md, "Field Naming Conventions"):
 * `STAGE_ID` → `stageId`. A custom field whose part after `UF_CRM_<n>_` is only letters or
 * only digits is converted the regular way, an underscore kept only between two numeric
 * blocks (`UF_CRM_3_DIGIT` → `ufCrm3Digit`, `UF_CRM_3_1747309727` → `ufCrm3_1747309727`);
 * any other (`UF_CRM_3_DIGIT10`, `UF_CRM_1747309879`) only has its prefix replaced
 * (`ufCrm_3_DIGIT10`, `ufCrm_1747309879`). camelCase keys stay as they are. (The doc's last
 * rule, a name already taken coming back in UPPER_CASE, is not modelled.)
 */
export function camelKey(key: string): string {
  if (/[a-z]/.test(key)) return key;
  if (key.startsWith('UF_CRM_')) {
    const rest = /^UF_CRM_\d+_(.+)$/.exec(key)?.[1];
    const regular = rest !== undefined && /^(\d+(_\d+)*|[A-Z]+(_[A-Z]+)*)$/.test(rest);
    if (!regular) return `ufCrm_${key.slice('UF_CRM_'.length)}`;
  }
  const parts = key.toLowerCase().split('_');
  let out = parts[0] ?? '';
  for (let i = 1; i < parts.length; i++) {
    const part = parts[i]!;
    const numeric = /^\d+$/.test(part);
    if (numeric && /^\d+$/.test(parts[i - 1]!)) out += `_${part}`;
    else out += numeric ? part : part.charAt(0).toUpperCase() + part.slice(1);
  }
  return out;
}

/** `DT128_1:NEW`: smart-process stage ids carry the type and the pipeline (category). */
const stagePrefix = (entityTypeId: number, categoryId: unknown): string =>
  `DT${entityTypeId}_${String(categoryId ?? 0)}`;

/** S for a SUCCESS stage, F for FAIL, P for every stage in between. */
const semanticOf = (stageId: unknown): string => {
  const bare = String(stageId ?? '').replace(/^.*:/, '');
  return bare === 'SUCCESS' ? 'S' : bare === 'FAIL' ? 'F' : 'P';
};

const NUMERIC_KEYS = new Set([
  'assignedById',
  'companyId',
  'contactId',
  'mycompanyId',
  'categoryId',
  'opportunity',
  'taxValue',
  'webformId',
]);

function defaults(
  entityTypeId: number,
  id: number,
  userId: number,
  date: string,
): Record<string, unknown> {
  return {
    id,
    xmlId: null,
    title: `Item #${id}`,
    createdBy: userId,
    updatedBy: userId,
    movedBy: userId,
    createdTime: date,
    updatedTime: date,
    movedTime: date,
    categoryId: 1,
    opened: 'Y',
    stageId: `${stagePrefix(entityTypeId, 1)}:NEW`,
    previousStageId: '',
    stageSemanticId: 'P',
    begindate: date,
    closedate: null,
    companyId: 0,
    contactId: 0,
    opportunity: 0,
    isManualOpportunity: 'N',
    taxValue: 0,
    currencyId: 'USD',
    mycompanyId: 0,
    sourceId: null,
    sourceDescription: null,
    webformId: 0,
    assignedById: userId,
    lastActivityBy: userId,
    lastActivityTime: date,
    observers: [],
    contactIds: [],
    entityTypeId,
  };
}

function normalize(key: string, value: unknown): unknown {
  if (value === undefined) return null;
  if (NUMERIC_KEYS.has(key) && value !== null && value !== '') return Number(value);
  return value;
}

export function createItemStore(now: () => number): ItemStore {
  const types = new Map<number, Map<string, SmartItem>>();
  const lastIds = new Map<number, number>();
  const typeMap = (entityTypeId: number): Map<string, SmartItem> => {
    let m = types.get(entityTypeId);
    if (!m) {
      m = new Map();
      types.set(entityTypeId, m);
    }
    return m;
  };

  /** Applies the caller's fields; returns whether a value changed. */
  const apply = (item: SmartItem, fields: Record<string, unknown>, userId: number): boolean => {
    let changed = false;
    const stageBefore = item['stageId'];
    for (const [rawKey, raw] of Object.entries(fields)) {
      const key = camelKey(rawKey);
      if (key === 'id' || key === 'entityTypeId') continue;
      const value = normalize(key, raw);
      if (JSON.stringify(item[key]) === JSON.stringify(value)) continue;
      item[key] = value;
      changed = true;
    }
    if (item['stageId'] !== stageBefore) {
      item['previousStageId'] = stageBefore ?? '';
      item['movedBy'] = userId;
      item['movedTime'] = formatBitrixDate(now());
    }
    item['stageSemanticId'] = semanticOf(item['stageId']);
    return changed;
  };

  return {
    types,
    add(entityTypeId, fields, userId) {
      const id = (lastIds.get(entityTypeId) ?? 0) + 1;
      lastIds.set(entityTypeId, id);
      const item = defaults(entityTypeId, id, userId, formatBitrixDate(now())) as SmartItem;
      const categoryId = fields['categoryId'] ?? fields['CATEGORY_ID'];
      if (categoryId !== undefined) {
        item['stageId'] = `${stagePrefix(entityTypeId, categoryId)}:NEW`;
      }
      apply(item, fields, userId);
      item['previousStageId'] = '';
      typeMap(entityTypeId).set(String(id), item);
      return item;
    },
    update(entityTypeId, id, fields, userId) {
      const item = types.get(entityTypeId)?.get(id);
      if (!item) return undefined;
      // "If no field values changed, the save is not performed" (crm-item-update.md).
      const changed = apply(item, fields, userId);
      if (changed) {
        item['updatedTime'] = formatBitrixDate(now());
        item['updatedBy'] = userId;
      }
      return { item, changed };
    },
    get(entityTypeId, id) {
      return types.get(entityTypeId)?.get(id);
    },
    list(entityTypeId, filter, start, order) {
      // Filter operators as in crm.deal.list (`>=updatedTime`, `>id`, `@stageId`), camelCase keys.
      const f = isRecord(filter) ? filter : {};
      const all = [...(types.get(entityTypeId)?.values() ?? [])].filter((item) =>
        matchesFilter(item, f, camelKey),
      );
      sortItems(all, isRecord(order) ? order : { id: 'ASC' }, camelKey);
      // `start=-1` skips the count (DOCS:settings/performance/huge-data.md). crm.item.* is a
      // D7 controller: CORE rest lib/engine/restmanager.php, `processMethodRequest` sets
      // `calculateTotalCount = false` for DONT_CALCULATE_COUNT (-1) and `getNavigationData`
      // then adds neither `total` nor `next` to `{items}`.
      if (Number(start) === -1) return { items: all.slice(0, LIST_PAGE) };
      const from = Math.max(0, Number(start ?? 0) || 0);
      const page: ItemListPage = { items: all.slice(from, from + LIST_PAGE), total: all.length };
      if (from + LIST_PAGE < all.length) page.next = from + LIST_PAGE;
      return page;
    },
  };
}
