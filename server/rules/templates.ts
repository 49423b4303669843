import { PermanentError } from '../lib/retry-errors.js';
import {
  applyFilters,
  asText,
  escapeFor,
  FilterSyntaxError,
  isRaw,
  parseFilter,
  type Escape,
  type FilterCall,
} from './template-filters.js';

/**
 * What `{{…}}` placeholders read. Usual roots: `event` ({name, id, memberId, …}), `entity`
 * (the event's record) and the same record under its type (`deal`, `lead`, `contact`, …),
 * related records (`contact`, `company`), `steps.<name>` ({response, status}) and `portal`
 * ({domain, memberId}). See context.ts for how the processor builds it.
 */
export type TemplateContext = Readonly<Record<string, unknown>>;

/**
 * A placeholder could not be filled. The message names the placeholder and the missing part,
 * e.g. `template {{contact.PHONE}}: contact has no PHONE`. Retrying cannot help, so the step
 * fails for good (PermanentError).
 */
export class TemplateError extends PermanentError {
  /** The placeholder's path as written, e.g. `contact.PHONE`. */
  readonly path: string;
  constructor(path: string, problem: string) {
    super(`template {{${path}}}: ${problem}`);
    this.name = 'TemplateError';
    this.path = path;
  }
}

/**
 * Characters one rendering (a step: every field of it together, counted as the values that go
 * in, a record or a step's output as its JSON) may produce. A template repeats what it reads
 * as often as it is written: 20,000 copies of a 10,000-character deal field in a 400 KB map
 * made 400 MB on the main thread and took the server's memory with it. 8 Mi characters is
 * far more than any API, SMS, chat or e-mail takes in one request.
 */
export const MAX_RENDERED_CHARS = 8 * 1024 * 1024;

/** What a rendering may still produce (shared by every field of one step). */
export interface RenderBudget {
  left: number;
  /** JSON sizes of the records and outputs counted so far (a repeated one is measured once). */
  readonly sizes: WeakMap<object, number>;
}

export const renderBudget = (chars: number = MAX_RENDERED_CHARS): RenderBudget => ({
  left: chars,
  sizes: new WeakMap(),
});

/** A step whose templates would fill in more than MAX_RENDERED_CHARS: never sent. */
export class RenderTooLargeError extends TemplateError {
  constructor(path: string) {
    super(
      path,
      `the step grows past ${MAX_RENDERED_CHARS} characters here (a large value written many times?); a step may hold at most ${MAX_RENDERED_CHARS}`,
    );
    this.name = 'RenderTooLargeError';
  }
}

export interface RenderOptions {
  /**
   * Leave `{{steps.…}}` placeholders as they are (dry run: earlier steps have not run, so
   * their output is unknown).
   */
  keepSteps?: boolean;
  /**
   * Escapes every interpolated value for the place the text goes (HTML of an e-mail, a
   * Telegram text with a parseMode); a placeholder with `| raw` is inserted as it is.
   */
  escape?: Escape;
  /** Shared by the fields of one step (renderAction); without it each call has its own. */
  budget?: RenderBudget;
}

/** Characters `value` adds to a rendering: text as it is, a record or a list as its JSON. */
function sizeOf(value: unknown, budget: RenderBudget): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === 'string') return value.length;
  if (typeof value !== 'object') return String(value).length;
  let n = budget.sizes.get(value);
  if (n === undefined) {
    n = JSON.stringify(value)?.length ?? 0;
    budget.sizes.set(value, n);
  }
  return n;
}

/** Takes `n` characters from the budget; throws naming the placeholder once it is spent. */
function spend(budget: RenderBudget, n: number, raw: string): void {
  budget.left -= n;
  if (budget.left < 0) throw new RenderTooLargeError(raw.trim());
}

// What is between the braces is trimmed in code: `\{\{\s*([^{}]*?)\s*\}\}` backtracked in
// cubic time on a `{{` with no `}}` (2,000 spaces after it held the main thread 4 s, and a
// map under the 256 KB cap for hours); these take linear time.
const PLACEHOLDER = /\{\{([^{}]*)\}\}/g;
const EXACT = /^\{\{([^{}]*)\}\}$/;
// Letters of any script: a step named in Russian (`{{steps.счёт.response}}`), or a key of an
// answer in Russian, as 1C's services give them (`{{steps.счёт.response.номер}}`).
const SEGMENT = /^[\p{L}_][\p{L}\p{N}_-]*$|^\d+$/u;

interface ParsedPath {
  /** As written, without the optional marker. */
  text: string;
  segments: string[];
  /** Written with a trailing `?`: a missing value renders as empty instead of failing. */
  optional: boolean;
}

/** Parses `contact.PHONE[0].VALUE?` into segments; throws TemplateError on bad syntax. */
export function parsePath(raw: string): ParsedPath {
  const optional = raw.endsWith('?');
  const text = (optional ? raw.slice(0, -1) : raw).trim();
  const segments = text
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .map((s) => s.trim());
  if (text === '' || segments.some((s) => !SEGMENT.test(s)) || /^\d/.test(segments[0] ?? '')) {
    throw new TemplateError(
      raw,
      'not a path (expected names and indexes joined by dots, e.g. contact.PHONE.0.VALUE)',
    );
  }
  return { text, segments, optional };
}

/**
 * A Bitrix24 multi-field (PHONE, EMAIL, WEB, IM): `[{ID, VALUE_TYPE, VALUE, TYPE_ID}]`.
 * Templates and conditions read such a field as its first VALUE.
 */
export function isMultiField(value: unknown): value is Array<{ VALUE: unknown }> {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => typeof v === 'object' && v !== null && 'VALUE' in v)
  );
}

const kindOf = (v: unknown): string =>
  v === null
    ? 'null'
    : Array.isArray(v)
      ? 'a list'
      : typeof v === 'object'
        ? 'an object'
        : typeof v;

type Lookup = { found: true; value: unknown } | { found: false; problem: string };

/** A placeholder's content: the path and the filters after it (`deal.TITLE? | upper`). */
export interface ParsedPlaceholder {
  path: ParsedPath;
  filters: FilterCall[];
}

/** Parses `deal.CLOSEDATE | date:"DD.MM.YYYY"`; throws TemplateError on bad syntax. */
export function parsePlaceholder(raw: string): ParsedPlaceholder {
  const [pathText = '', ...filterTexts] = raw.split('|');
  const path = parsePath(pathText.trim());
  try {
    return { path, filters: filterTexts.map(parseFilter) };
  } catch (e) {
    if (e instanceof FilterSyntaxError) throw new TemplateError(raw.trim(), e.message);
    throw e;
  }
}

/** Follows a path through the context; says which part is missing when it cannot. */
export function lookupPath(ctx: TemplateContext, segments: readonly string[]): Lookup {
  const [root, ...rest] = segments;
  if (root === undefined) return { found: false, problem: 'empty path' };
  // Own properties only: `{{constructor}}` or `{{deal.toString}}` must not reach what an
  // object inherits (its prototype's functions), only what the record holds.
  let current: unknown = Object.hasOwn(ctx, root) ? ctx[root] : undefined;
  if (current === undefined || current === null) {
    return {
      found: false,
      problem:
        root === 'steps'
          ? 'no step output is available here'
          : `${root} is not available for this event`,
    };
  }
  let at = root;
  for (const seg of rest) {
    if (at === 'steps' && (current as Record<string, unknown>)[seg] === undefined) {
      return { found: false, problem: `no earlier step named "${seg}" has run` };
    }
    let next: unknown;
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(seg))
        return { found: false, problem: `${at} is a list, "${seg}" is not an index` };
      next = current[Number(seg)];
      if (next === undefined) {
        return { found: false, problem: `${at} has no item ${seg} (it has ${current.length})` };
      }
    } else if (typeof current === 'object' && current !== null) {
      next = Object.hasOwn(current, seg) ? (current as Record<string, unknown>)[seg] : undefined;
      if (next === undefined) return { found: false, problem: `${at} has no ${seg}` };
    } else {
      return { found: false, problem: `${at} is ${kindOf(current)}, not an object` };
    }
    if (next === null) return { found: false, problem: `${at}.${seg} is empty (null)` };
    if (Array.isArray(next) && next.length === 0) {
      return { found: false, problem: `${at} has no ${seg} (empty list)` };
    }
    current = next;
    at = `${at}.${seg}`;
  }
  return { found: true, value: current };
}

/**
 * The value a placeholder stands for, filters applied: a multi-field reads as its first
 * VALUE; a missing optional value skips the filters.
 */
function resolve(
  ctx: TemplateContext,
  raw: string,
): { value: unknown; missing: boolean; raw: boolean } {
  const { path, filters } = parsePlaceholder(raw);
  const hit = lookupPath(ctx, path.segments);
  if (!hit.found) {
    if (path.optional) return { value: undefined, missing: true, raw: isRaw(filters) };
    throw new TemplateError(path.text, hit.problem);
  }
  const value = isMultiField(hit.value) ? hit.value[0]?.VALUE : hit.value;
  try {
    return { value: applyFilters(value, filters), missing: false, raw: isRaw(filters) };
  } catch (e) {
    if (e instanceof FilterSyntaxError) throw new TemplateError(raw.trim(), e.message);
    throw e;
  }
}

function renderString(s: string, ctx: TemplateContext, opts: RenderOptions): unknown {
  const budget = opts.budget ?? renderBudget();
  // The text as written counts too; what crosses the limit is the placeholder named.
  budget.left -= s.length;
  if (!s.includes('{{')) return s;
  const keep = (raw: string) => opts.keepSteps === true && /^\s*steps[.[]/.test(raw);
  const text = (r: ReturnType<typeof resolve>, raw: string): string => {
    const v = asText(r.value);
    // WHATWG URL parsing takes `..` (and `%2e%2e`) as a step up the path, encoded or not.
    if (!r.raw && opts.escape === 'url' && (v === '.' || v === '..')) {
      throw new TemplateError(raw.trim(), `"${v}" may not be a value in a URL`);
    }
    // `| raw` only switches the escaping off: what it inserts counts all the same.
    const out = r.raw ? v : escapeFor(opts.escape, v);
    spend(budget, out.length, raw);
    return out;
  };
  const exact = EXACT.exec(s);
  // A URL that is one placeholder is a whole URL from the data, taken as it is.
  if (exact && (opts.escape === undefined || opts.escape === 'url')) {
    const raw = (exact[1] ?? '').trim();
    if (keep(raw)) return s;
    const r = resolve(ctx, raw);
    // A lone placeholder keeps the value's JSON type, so `"amount": "{{deal.OPPORTUNITY}}"`
    // sends what Bitrix24 holds and `"{{steps.a.response}}"` passes an object on.
    if (r.missing) return null;
    spend(budget, sizeOf(r.value, budget), raw);
    return r.value;
  }
  return s.replace(PLACEHOLDER, (whole, inner: string) => {
    const raw = inner.trim();
    return keep(raw) ? whole : text(resolve(ctx, raw), raw);
  });
}

/**
 * Deep-renders `{{path}}` placeholders in any JSON value (object keys are left alone). A
 * string that is exactly one placeholder becomes the value itself (number, object, …), so a
 * value inserted into a JSON body always stays valid JSON (it is serialised as a whole, never
 * spliced into JSON text); otherwise values are interpolated as text, escaped as
 * `opts.escape` says. `{{path?}}` renders a missing value as empty; without `?` a missing or
 * null value throws TemplateError naming the path. Filters follow the path:
 * `{{deal.TITLE | upper}}`, `| lower`, `| date`, `| money`, `| raw` (see template-filters.ts).
 */
export function renderTemplate(
  value: unknown,
  ctx: TemplateContext,
  options: RenderOptions = {},
): unknown {
  const opts = options.budget ? options : { ...options, budget: renderBudget() };
  if (typeof value === 'string') return renderString(value, ctx, opts);
  if (Array.isArray(value)) return value.map((v) => renderTemplate(v, ctx, opts));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = renderTemplate(v, ctx, opts);
    return out;
  }
  return value;
}

/** The text with each `{{placeholder}}` replaced by `by` (what a check of its markup reads). */
export const withoutPlaceholders = (s: string, by: string): string => s.replace(PLACEHOLDER, by);

/** Every placeholder string found in a JSON value, as written (`contact.PHONE? | upper`). */
export function placeholders(value: unknown): string[] {
  const found: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      for (const m of v.matchAll(PLACEHOLDER)) found.push((m[1] ?? '').trim());
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(walk);
  };
  walk(value);
  return found;
}

/**
 * The strings of a JSON value with a `{{` that no `}}` closes (`"{{deal.TITLE"`): not a
 * placeholder, so sent as written, braces and all. Each is cut to 60 characters from its
 * first such `{{`.
 */
export function unclosedTemplates(value: unknown): string[] {
  const found: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') {
      const rest = v.replace(PLACEHOLDER, '');
      const at = rest.indexOf('{{');
      if (at !== -1) found.push(rest.slice(at, at + 60));
    } else if (Array.isArray(v)) v.forEach(walk);
    else if (typeof v === 'object' && v !== null) Object.values(v).forEach(walk);
  };
  walk(value);
  return found;
}

/**
 * The paths a JSON value's templates read, normalised (`contact.PHONE.0.VALUE`, no `?`). The
 * processor uses their first segments to decide which related records to load. Placeholders
 * that are not valid paths are left out (validation reports them).
 */
export function templatePaths(value: unknown): Set<string> {
  const out = new Set<string>();
  for (const raw of placeholders(value)) {
    try {
      out.add(parsePlaceholder(raw).path.segments.join('.'));
    } catch {
      // reported by validateEventMap
    }
  }
  return out;
}

/** The roots (first segments) of `templatePaths(value)`: `deal`, `contact`, `steps`, … */
export function templateRoots(value: unknown): Set<string> {
  return new Set([...templatePaths(value)].map((p) => p.split('.')[0] ?? p));
}
