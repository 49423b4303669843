/**
 * What a value becomes where it is written: filters a rule asks for (`{{deal.TITLE | upper}}`)
 * and the escaping of the place a value goes (an e-mail's `html`, a Telegram text with a
 * `parseMode`), so a deal title with `<`, `&` or `_` reaches the reader as written.
 */

/** How interpolated values are escaped; `undefined` leaves them as they are (plain text). */
export type Escape = 'html' | 'markdownV2' | 'markdown' | 'url';

const HTML: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/**
 * HTML text or attribute content. Telegram's HTML mode needs `<`, `>` and `&` replaced and
 * knows `&quot;` and numeric entities (https://core.telegram.org/bots/api#html-style).
 */
export const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => HTML[c] ?? c);

/**
 * Telegram MarkdownV2: every character of `_*[]()~\`>#+-=|{}.!` and the backslash itself are
 * escaped with a backslash (https://core.telegram.org/bots/api#markdownv2-style).
 */
export const escapeMarkdownV2 = (s: string): string =>
  s.replace(/[_*[\]()~`>#+\-=|{}.!\\]/g, (c) => `\\${c}`);

/**
 * Telegram's legacy Markdown: `_`, `*`, `` ` `` and `[` outside an entity are escaped with a
 * backslash (https://core.telegram.org/bots/api#markdown-style).
 */
export const escapeMarkdown = (s: string): string => s.replace(/[_*`[]/g, (c) => `\\${c}`);

export function escapeFor(mode: Escape | undefined, s: string): string {
  if (mode === 'url') return encodeURIComponent(s);
  if (mode === 'html') return escapeHtml(s);
  if (mode === 'markdownV2') return escapeMarkdownV2(s);
  if (mode === 'markdown') return escapeMarkdown(s);
  return s;
}

/** A filter as written after the path: `| date:"DD.MM.YYYY"`. */
export interface FilterCall {
  name: FilterName;
  arg: string | undefined;
}

export const FILTER_NAMES = ['raw', 'upper', 'lower', 'date', 'money'] as const;
export type FilterName = (typeof FILTER_NAMES)[number];

/** Filter syntax problems; templates.ts turns them into a TemplateError naming the placeholder. */
export class FilterSyntaxError extends Error {}

// Read from trimmed text. A bare argument starts and ends with a non-space: the lazy
// `[\w.:/ -]+?` before `\s*$` it replaces took quadratic time on `date:a` + spaces + `!`.
const FILTER = /^([a-z]+)\s*(?::\s*(?:"([^"]*)"|'([^']*)'|([\w.:/-](?:[\w.:/ -]*[\w.:/-])?)))?$/;

/** Parses `upper`, `date:"DD.MM.YYYY"`, `money:RUB` (the text after each `|`). */
export function parseFilter(text: string): FilterCall {
  const m = FILTER.exec(text.trim());
  const name = m?.[1];
  if (!m || !name || !(FILTER_NAMES as readonly string[]).includes(name)) {
    throw new FilterSyntaxError(
      `unknown filter "${text.trim()}" (filters: ${FILTER_NAMES.join(', ')})`,
    );
  }
  const arg = m[2] ?? m[3] ?? m[4];
  if (arg !== undefined && (name === 'raw' || name === 'upper' || name === 'lower')) {
    throw new FilterSyntaxError(`filter "${name}" takes no argument`);
  }
  return { name: name as FilterName, arg };
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * A Bitrix24 date (`2026-11-27T14:03:00+03:00`, in the portal's time zone with its offset)
 * shown in that same offset, so the reader sees the portal's wall-clock time. Tokens: YYYY,
 * MM, DD, HH, mm, ss. Numbers are Unix seconds (shown in UTC).
 */
export function formatDate(value: unknown, format = 'YYYY-MM-DD HH:mm'): string {
  let ms: number;
  let offsetMin = 0;
  if (typeof value === 'number' && Number.isFinite(value)) ms = value * 1000;
  else if (typeof value === 'string') {
    const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?))?(Z|[+-]\d{2}:?\d{2})?$/.exec(
      value.trim(),
    );
    if (!m) throw new FilterSyntaxError(`"${value}" is not a date`);
    const zone = m[3];
    if (zone && zone !== 'Z') {
      const sign = zone.startsWith('-') ? -1 : 1;
      const digits = zone.slice(1).replace(':', '');
      offsetMin = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2)));
    }
    ms = Date.parse(`${m[1]}T${m[2] ?? '00:00:00'}Z`) - offsetMin * 60_000;
    if (Number.isNaN(ms)) throw new FilterSyntaxError(`"${value}" is not a date`);
  } else throw new FilterSyntaxError('the value is not a date');
  const d = new Date(ms + offsetMin * 60_000);
  const parts: Record<string, string> = {
    YYYY: String(d.getUTCFullYear()),
    MM: pad(d.getUTCMonth() + 1),
    DD: pad(d.getUTCDate()),
    HH: pad(d.getUTCHours()),
    mm: pad(d.getUTCMinutes()),
    ss: pad(d.getUTCSeconds()),
  };
  return format.replace(/YYYY|MM|DD|HH|mm|ss/g, (t) => parts[t] ?? t);
}

/**
 * An amount with thousands grouped by a space and two decimals: `1500` → `1 500.00`; with a
 * currency argument, `money:RUB` → `1 500.00 RUB`.
 */
export function formatMoney(value: unknown, currency?: string): string {
  const n = typeof value === 'number' ? value : Number(String(value).trim());
  if (value === '' || typeof value === 'boolean' || !Number.isFinite(n)) {
    throw new FilterSyntaxError(`"${String(value)}" is not an amount`);
  }
  const [int = '0', frac = '00'] = Math.abs(n).toFixed(2).split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  const text = `${n < 0 ? '-' : ''}${grouped}.${frac}`;
  return currency ? `${text} ${currency}` : text;
}

/** A value as text: objects as JSON, null and undefined as empty. */
export const asText = (v: unknown): string =>
  v === undefined || v === null
    ? ''
    : typeof v === 'string'
      ? v
      : typeof v === 'object'
        ? JSON.stringify(v)
        : String(v);

/** Applies the filters in order; `raw` only switches escaping off (see `isRaw`). */
export function applyFilters(value: unknown, filters: readonly FilterCall[]): unknown {
  let v = value;
  for (const f of filters) {
    if (f.name === 'upper') v = asText(v).toUpperCase();
    else if (f.name === 'lower') v = asText(v).toLowerCase();
    else if (f.name === 'date') v = formatDate(v, f.arg);
    else if (f.name === 'money') v = formatMoney(v, f.arg);
  }
  return v;
}

export const isRaw = (filters: readonly FilterCall[]): boolean =>
  filters.some((f) => f.name === 'raw');
