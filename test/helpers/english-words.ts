import { dictionary } from '../../server/ui/i18n.js';

/**
 * What counts as an English UI string on a Russian page. Every visible text (text nodes,
 * `aria-label`, `title`, `placeholder`, the document title) outside data — elements marked
 * `translate="no"`, `<code>`, `<pre>`, `<textarea>` — may hold Latin words only when they are
 * data: quoted values, `{{templates}}`, `$.json.paths`, UPPER_CASE names (fields, events,
 * stages), JSON's true, false and null, host names, URLs, addresses, the `UTC+3` label of a time, the app's name. Any
 * other Latin word must be one the Russian dictionary itself uses (E-mail, SLA, Telegram…).
 */
const DATA = [
  /"(?:[^"\\]|\\.)*"/g,
  /\{\{[^{}]*\}\}/g,
  /\$(?:\.[\w$]+|\[[^\]]*\])*/g,
  /https?:\/\/\S+/g,
  /[\w.+-]+@[\w.-]+/g,
  /\b(?:[a-z0-9-]+\.)+[a-z]{2,}(?::\d+)?\b/gi,
  /\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g,
  /\bUTC(?:[+-]\d{1,2}(?::\d{2})?)?/g,
  /\b[A-Z][A-Z0-9_]+\b/g,
  /\bb24hooks\b/g,
  /\b(?:true|false|null)\b/g,
];
const ALLOWED = new Set(
  dictionary('ru')
    .flatMap((s) => s.match(/[A-Za-z][A-Za-z0-9]*/g) ?? [])
    .map((w) => w.toLowerCase()),
);

/** The English words of `text` on a Russian page (data and dictionary words aside). */
export function englishIn(text: string): string[] {
  let rest = text;
  for (const re of DATA) rest = rest.replace(re, ' ');
  return (rest.match(/[A-Za-z][A-Za-z0-9]+/g) ?? []).filter((w) => !ALLOWED.has(w.toLowerCase()));
}
