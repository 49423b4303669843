import type { Action } from './model.js';
import type { Escape } from './template-filters.js';
import {
  renderBudget,
  renderTemplate,
  type RenderOptions,
  type TemplateContext,
} from './templates.js';

/** Step keys that are never templates. */
const FIXED = new Set(['type', 'name', 'continueOnError', 'timeoutMs']);
/** Keys that must stay text even when a lone placeholder yields a number or object. */
const TEXT = new Set([
  'url',
  'text',
  'subject',
  'html',
  'to',
  'chatId',
  'method',
  'from',
  'secret',
]);

const asText = (v: unknown): unknown => {
  if (Array.isArray(v)) return v.map(asText);
  if (typeof v === 'string' || v === null || v === undefined) return v ?? '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
};

const TELEGRAM_ESCAPE: Record<string, Escape> = {
  HTML: 'html',
  MarkdownV2: 'markdownV2',
  Markdown: 'markdown',
};

/**
 * How values are escaped in one field of a step: an e-mail's `html` as HTML, a Telegram
 * `text` as its `parseMode` says (none without one), an `http` step's `url` percent-encoded
 * (a deal title of `../admin?x=` stays one path segment, so CRM data never picks another
 * path or query on the host, where the step's credentials go). Other fields are plain text
 * or JSON.
 */
export function escapeOf(action: Action, key: string): Escape | undefined {
  if (action.type === 'http' && key === 'url') return 'url';
  if (action.type === 'email' && key === 'html') return 'html';
  if (action.type === 'telegram' && key === 'text' && action.parseMode) {
    return TELEGRAM_ESCAPE[action.parseMode];
  }
  return undefined;
}

/**
 * The step with every template filled (throws TemplateError naming the path of a missing
 * value, RenderTooLargeError when its fields together would pass MAX_RENDERED_CHARS). `http.body`, `http.headers` and `bitrix.params` keep JSON types; text fields stay
 * text, with values escaped for markup where the field is markup (`escapeOf`).
 */
export function renderAction<A extends Action>(
  action: A,
  ctx: TemplateContext,
  options: RenderOptions = {},
): A {
  // One budget for every field: the step is sent (and stored) whole.
  const opts = { ...options, budget: options.budget ?? renderBudget() };
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(action)) {
    if (FIXED.has(key)) out[key] = value;
    else if (TEXT.has(key)) {
      out[key] = asText(renderTemplate(value, ctx, { ...opts, escape: escapeOf(action, key) }));
    } else if (key === 'headers') {
      const h: Record<string, string> = {};
      for (const [k, v] of Object.entries(
        renderTemplate(value, ctx, opts) as Record<string, unknown>,
      )) {
        h[k] = asText(v) as string;
      }
      out[key] = h;
    } else out[key] = renderTemplate(value, ctx, opts);
  }
  return out as A;
}
