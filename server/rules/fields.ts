import leven from 'leven';
import { CONTEXT_ROOTS } from './context.js';
import type { FieldPath } from './model.js';
import { isMultiField, lookupPath, parsePath, type TemplateContext } from './templates.js';

const ROOTS: ReadonlySet<string> = new Set(CONTEXT_ROOTS);

/**
 * The known name `word` is probably a typo of (a field, a template root): at most two letters
 * apart in any case, the closest, the first of equals.
 */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of known) {
    const d = leven(word.toUpperCase(), name.toUpperCase());
    if (d <= 2 && (!best || d < best.d)) best = { name, d };
  }
  return best?.name;
}

/**
 * A condition field as a context path: `STAGE_ID` → `entity.STAGE_ID`; `deal.STAGE_ID` and
 * `contact.PHONE` stay as they are (lower-case context roots; Bitrix24 fields are upper case).
 */
export function fieldSegments(field: FieldPath): string[] {
  const segments = parsePath(field).segments;
  return ROOTS.has(segments[0] ?? '') ? segments : ['entity', ...segments];
}

/** The root a condition field reads (`entity` for a bare field name). */
export function fieldRoot(field: FieldPath): string {
  return fieldSegments(field)[0] ?? 'entity';
}

/**
 * The field's value, or undefined when any part of the path is missing. A multi-field
 * (PHONE, EMAIL, …) reads as its first VALUE, as in templates.
 */
export function readField(ctx: TemplateContext, field: FieldPath): unknown {
  const hit = lookupPath(ctx, fieldSegments(field));
  if (!hit.found) return undefined;
  return isMultiField(hit.value) ? hit.value[0]?.VALUE : hit.value;
}

const isEmpty = (v: unknown): boolean => v === undefined || v === null || v === '';
const NUMERIC = /^\s*-?\d+(\.\d+)?\s*$/;

/**
 * Equality as an admin means it for Bitrix24 data: missing, null and "" are all empty; a
 * number equals a numeric string of the same value (`1500` = `"1500.00"`); other scalars
 * compare as text (`5` = `"5"`, `true` = `"true"`); lists and objects compare by content.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (isEmpty(a) || isEmpty(b)) return isEmpty(a) && isEmpty(b);
  const scalar = (v: unknown) => typeof v !== 'object';
  if (scalar(a) && scalar(b)) {
    if (
      (typeof a === 'number' || typeof b === 'number') &&
      NUMERIC.test(String(a)) &&
      NUMERIC.test(String(b))
    ) {
      return Number(a) === Number(b);
    }
    return String(a) === String(b);
  }
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Short text for a value in a reason: `"WON"`, `1500`, `empty`. */
export function show(v: unknown): string {
  if (isEmpty(v)) return 'empty';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export { isEmpty };

/**
 * A field's UPPER_CASE name, whichever naming a rule used: crm.item's camelCase (`stageId`,
 * `ufCrm3_1747309727`) and crm.deal's UPPER_CASE (`STAGE_ID`) name one field to Bitrix24.
 * The reverse of the portal's conversion (b24restdocs api-reference/crm/universal/index.md,
 * "Field Naming Conventions"): `ufCrm_…` had only its `UF_CRM_` prefix replaced; otherwise
 * every word and every numeric block was its own part (`ufCrm3Digit` → `UF_CRM_3_DIGIT`,
 * `ufCrm3_1747309727` → `UF_CRM_3_1747309727`). Names without a lower-case letter stay.
 */
export function upperFieldName(name: string): string {
  if (!/[a-z]/.test(name)) return name;
  if (name.startsWith('ufCrm_')) return `UF_CRM_${name.slice('ufCrm_'.length)}`;
  return name
    .replace(/([a-z\d])([A-Z])/g, '$1_$2')
    .replace(/([a-zA-Z])(\d)/g, '$1_$2')
    .toUpperCase();
}
