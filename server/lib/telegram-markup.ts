/**
 * How the Bot API reads a message text with a `parse_mode` (https://core.telegram.org/bots/api#formatting-options):
 * the text a reader sees (markup removed, entities decoded), or the 400 description Telegram
 * answers when the markup does not parse. A model of the documented rules, not of every
 * corner of Telegram's parser (behaviour beyond the documented rules is a guess).
 */
export type MarkupResult = { ok: true; plain: string } | { ok: false; description: string };

const bad = (why: string): MarkupResult => ({
  ok: false,
  description: `Bad Request: can't parse entities: ${why}`,
});

/** Tags of the HTML style; `span` only with class tg-spoiler. */
const HTML_TAGS = new Set([
  'b',
  'strong',
  'i',
  'em',
  'u',
  'ins',
  's',
  'strike',
  'del',
  'span',
  'tg-spoiler',
  'a',
  'tg-emoji',
  'code',
  'pre',
  'blockquote',
]);
const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"' };

/**
 * HTML style: "All <, > and & symbols that are not a part of a tag or an HTML entity must be
 * replaced"; only the listed tags, properly nested; named entities lt, gt, amp, quot and all
 * numeric ones. A `&` that starts no entity stays as it is (guess, as Telegram's parser does).
 */
function parseHtml(text: string): MarkupResult {
  const open: string[] = [];
  let plain = '';
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    if (c === '<') {
      const m = /^<(\/?)([a-z-]+)((?:\s+[a-z-]+(?:="[^"]*"|='[^']*')?)*)\s*>/i.exec(text.slice(i));
      if (!m) return bad(`Unsupported start tag at byte offset ${i}`);
      const name = m[2]!.toLowerCase();
      if (!HTML_TAGS.has(name)) return bad(`Unsupported start tag "${name}" at byte offset ${i}`);
      if (m[1]) {
        if (open.pop() !== name) return bad(`Unmatched end tag at byte offset ${i}`);
      } else open.push(name);
      i += m[0].length;
    } else if (c === '>') {
      return bad(`Unexpected end tag at byte offset ${i}`);
    } else if (c === '&') {
      const m = /^&(?:#(\d{1,7})|#x([0-9a-f]{1,6})|([a-z]+));/i.exec(text.slice(i));
      const decoded = m
        ? m[1]
          ? String.fromCodePoint(Number(m[1]))
          : m[2]
            ? String.fromCodePoint(parseInt(m[2], 16))
            : NAMED[m[3]!.toLowerCase()]
        : undefined;
      if (m && decoded !== undefined) {
        plain += decoded;
        i += m[0].length;
      } else {
        plain += c;
        i++;
      }
    } else {
      plain += c;
      i++;
    }
  }
  if (open.length) return bad(`Can't find end tag corresponding to start tag "${open.at(-1)}"`);
  return { ok: true, plain };
}

const V2_RESERVED = '_*[]()~`>#+-=|{}.!';

/**
 * MarkdownV2 style: `\` escapes any character; `*bold*`, `_italic_`, `__underline__`,
 * `~strike~`, `||spoiler||`, `` `code` ``, `[text](url)`; every other reserved character must
 * be escaped ("Character '.' is reserved and must be escaped with the preceding '\'").
 */
function parseMarkdownV2(text: string): MarkupResult {
  const open: string[] = [];
  let plain = '';
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    if (c === '\\') {
      const next = text[i + 1];
      if (next === undefined) return bad(`Character '\\' must be escaped`);
      plain += next;
      i += 2;
      continue;
    }
    const marker =
      text.startsWith('__', i) || text.startsWith('||', i)
        ? text.slice(i, i + 2)
        : '*_~`'.includes(c)
          ? c
          : undefined;
    if (marker) {
      if (open.at(-1) === marker) open.pop();
      else open.push(marker);
      i += marker.length;
      continue;
    }
    if (c === '[') {
      const m = /^\[([^\]]*)\]\(([^)]*)\)/.exec(text.slice(i));
      if (!m) return bad(`Can't find end of a link at byte offset ${i}`);
      plain += m[1];
      i += m[0].length;
      continue;
    }
    if (V2_RESERVED.includes(c)) {
      return bad(`Character '${c}' is reserved and must be escaped with the preceding '\\'`);
    }
    plain += c;
    i++;
  }
  if (open.length) return bad(`Can't find end of the entity starting with "${open.at(-1)}"`);
  return { ok: true, plain };
}

/** Legacy Markdown: `*bold*`, `_italic_`, `` `code` ``, `[text](url)`; `\` escapes them. */
function parseMarkdown(text: string): MarkupResult {
  const open: string[] = [];
  let plain = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && '_*`['.includes(text[i + 1] ?? '')) {
      plain += text[++i];
    } else if ('_*`'.includes(c)) {
      if (open.at(-1) === c) open.pop();
      else open.push(c);
    } else if (c === '[') {
      const m = /^\[([^\]]*)\]\(([^)]*)\)/.exec(text.slice(i));
      if (!m) return bad(`Can't find end of the entity starting at byte offset ${i}`);
      plain += m[1];
      i += m[0].length - 1;
    } else plain += c;
  }
  if (open.length) return bad(`Can't find end of the entity starting with "${open.at(-1)}"`);
  return { ok: true, plain };
}

export function readMarkup(text: string, parseMode: string | undefined): MarkupResult {
  if (parseMode === 'HTML') return parseHtml(text);
  if (parseMode === 'MarkdownV2') return parseMarkdownV2(text);
  if (parseMode === 'Markdown') return parseMarkdown(text);
  if (parseMode !== undefined)
    return { ok: false, description: 'Bad Request: unsupported parse_mode' };
  return { ok: true, plain: text };
}
