import type { MapWarning } from './check-map.js';
import { entityRoot, RELATED_ROOTS } from './context.js';
import { closest, fieldSegments } from './fields.js';
import type { FieldInfo, PortalMetadata } from './metadata.js';
import type { Rule } from './model.js';
import { parsePlaceholder, placeholders } from './templates.js';

/** The fields of the portal's records, by context root, where they are known. */
export type KnownFields = Partial<
  Record<
    'deal' | 'lead' | 'contact' | 'company' | 'activity' | 'quote' | 'invoice',
    readonly string[]
  >
>;

const WORDS: Record<keyof KnownFields, string> = {
  deal: 'deals',
  lead: 'leads',
  contact: 'contacts',
  company: 'companies',
  activity: 'activities',
  quote: 'quotes',
  invoice: 'invoices',
};

/** The record a rule's events are about, when they are all of one kind (what `entity` reads). */
function ownRoot(rule: Rule): string | undefined {
  const roots = new Set(rule.on.map((e) => entityRoot(null, e)));
  return roots.size === 1 ? [...roots][0] : undefined;
}

/** A path's record (`entity`: the rule's own) and field, when the record is one checked here. */
function checkedField(
  segments: readonly string[],
  own: string | undefined,
): { root: keyof KnownFields; field: string } | undefined {
  const [first, field] = segments;
  const root = first === 'entity' ? own : first;
  return root && field && root in WORDS ? { root: root as keyof KnownFields, field } : undefined;
}

/**
 * Fields a rule reads that the portal's records do not have: a condition on `STAGEID`, a
 * template `{{deal.OPORTUNITY}}`. Such a rule saves, and then never matches, or fails at that
 * step on every event; said as a warning when it is saved (the builder has the portal's field
 * lists, server/rules/metadata.ts). Only deals, leads, contacts, companies, activities, quotes
 * and old invoices are checked, each only when its list is known; a bare condition field is
 * the rule's record's, and optional placeholders (`{{deal.X?}}`) are left alone.
 */
export function unknownFieldWarnings(rule: Rule, known: KnownFields): MapWarning[] {
  const own = ownRoot(rule);
  const reads = new Map<string, Set<string>>();
  const read = (segments: readonly string[]) => {
    const checked = checkedField(segments, own);
    if (!checked) return;
    const { root, field } = checked;
    // contact and company are read for a deal's or lead's events, or as the record itself.
    if (root !== own && !(RELATED_ROOTS as readonly string[]).includes(root)) return;
    const set = reads.get(root) ?? new Set<string>();
    set.add(field);
    reads.set(root, set);
  };
  for (const c of rule.when ?? []) read(fieldSegments(c.field));
  for (const a of rule.actions) {
    for (const [key, value] of Object.entries(a)) {
      if (key === 'type' || key === 'name') continue;
      for (const raw of placeholders(value)) {
        try {
          const { path } = parsePlaceholder(raw);
          if (!path.optional) read(path.segments);
        } catch {
          // validation says what is wrong with it
        }
      }
    }
  }
  const out: MapWarning[] = [];
  for (const [root, fields] of reads) {
    const list = known[root as keyof KnownFields];
    if (!list || list.length === 0) continue;
    for (const field of fields) {
      if (list.includes(field)) continue;
      const guess = closest(field, list);
      out.push({
        code: 'unknown-field',
        rules: [rule.name],
        message: `rule ${JSON.stringify(rule.name)} reads ${root}.${field}: the portal's ${WORDS[root as keyof KnownFields]} have no field ${field}${guess ? `; did you mean ${guess}?` : ''}`,
      });
    }
  }
  return out;
}

/** The portal's field lists with their types, by context root (server/rules/metadata.ts). */
export type FieldLists = Partial<Record<keyof KnownFields, readonly FieldInfo[]>>;

/** Field types Bitrix24 REST documents as numbers (`crm.deal.fields`: OPPORTUNITY, PROBABILITY). */
const NUMBER_TYPES: ReadonlySet<string> = new Set(['integer', 'double']);
const NUMBER_TEXT = /^\s*-?\d+(\.\d+)?\s*$/;

/** Status lists whose codes are a stage or status a record always has. */
const STAGE_LISTS: ReadonlySet<string> = new Set(['STATUS', 'QUOTE_STATUS', 'INVOICE_STATUS']);

/**
 * Fields a record always has a value in: a stage or status (a deal's STAGE_ID, a lead's,
 * quote's or old invoice's STATUS_ID), a pipeline, an activity's type. A condition on one with
 * an empty value (the builder's "— choose —" left as it was) never holds.
 */
function neverEmpty(info: FieldInfo): boolean {
  const stage =
    STAGE_LISTS.has(info.statusType ?? '') || (info.statusType ?? '').startsWith('DEAL_STAGE');
  return (
    stage ||
    ['STAGE_ID', 'CATEGORY_ID'].includes(info.code) ||
    info.type === 'crm_category' ||
    info.type === 'crm_enum_activitytype'
  );
}

/**
 * Condition values a field's type never takes, where the builder's field lists say the type:
 * "Amount equals abc" (a number field and a word), "Closed equals yes" (a `char` flag, which
 * Bitrix24 sends as Y or N). Such a rule saves and then never matches. A number written as
 * text (`"equals": "1500"`, as hand-written JSON has it) compares as text, so it misses the
 * "1500.00" Bitrix24 sends: said as well (fields.ts `sameValue`; the builder writes numbers).
 */
export function valueTypeWarnings(rule: Rule, lists: FieldLists): MapWarning[] {
  const own = ownRoot(rule);
  const out: MapWarning[] = [];
  const name = JSON.stringify(rule.name);
  for (const c of rule.when ?? []) {
    const values =
      'equals' in c ? [c.equals] : 'becomes' in c ? [c.becomes] : 'in' in c ? c.in : [];
    const checked = checkedField(fieldSegments(c.field), own);
    if (!checked) continue;
    const { root, field } = checked;
    const info = lists[root]?.find((f) => f.code === field);
    if (!info) continue;
    const path = `${root}.${field}`;
    if (values.length === 1 && values[0] === '' && neverEmpty(info)) {
      out.push({
        code: 'value-type',
        rules: [rule.name],
        message: `rule ${name}: ${path} is never empty, and the condition's value is empty (nothing chosen): the rule never matches`,
      });
    }
    for (const v of values) {
      if (typeof v !== 'string' || v.trim() === '') continue;
      if (NUMBER_TYPES.has(info.type)) {
        if (!NUMBER_TEXT.test(v)) {
          out.push({
            code: 'value-type',
            rules: [rule.name],
            message: `rule ${name}: ${path} holds a number and never equals ${JSON.stringify(v)}`,
          });
        } else if (info.type === 'double') {
          out.push({
            code: 'value-type',
            rules: [rule.name],
            message: `rule ${name}: ${path} holds a number, but ${JSON.stringify(v)} is written as text, which equals only the same text; write it without quotes (${Number(v)}) to compare numbers`,
          });
        }
      } else if (info.type === 'char' && v !== 'Y' && v !== 'N') {
        out.push({
          code: 'value-type',
          rules: [rule.name],
          message: `rule ${name}: ${path} holds Y or N and never equals ${JSON.stringify(v)}`,
        });
      }
    }
  }
  return out;
}

/**
 * What the portal's field lists say of a rule: fields its records lack and condition values
 * a field never takes. The builder says them at save; the rules page says them every time
 * (a rule saved "on" that never matches looked finished there).
 */
export function ruleFieldWarnings(
  rule: Rule,
  meta: Pick<PortalMetadata, 'entities'> | undefined,
): MapWarning[] {
  if (!meta) return [];
  const known: KnownFields = {};
  for (const root of Object.keys(WORDS) as Array<keyof KnownFields>) {
    known[root] = meta.entities[root].map((f) => f.code);
  }
  return [...unknownFieldWarnings(rule, known), ...valueTypeWarnings(rule, meta.entities)];
}
