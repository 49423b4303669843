/**
 * A fast path for the usual shape of a Bitrix24 delivery: `&`-separated `key=value` pairs
 * whose keys are a name followed by `[name]` segments (`data[FIELDS][ID]`, percent-encoded
 * or not), every key once. On such a body it returns exactly what `qs.parse` returns with
 * the intake's options (checked against qs on generated bodies in
 * test/unit/form-fast.test.ts) at a fraction of the cost; qs was about a fifth of the
 * intake's CPU per delivery. Anything else — array keys (`[0]`, `[]`), repeated keys, dots,
 * prototype names, keys deeper than the limit, parts without `=` — returns `undefined`, and
 * the caller lets qs decide, limits and errors included.
 */

/** Names qs refuses as keys (allowPrototypes: false) — left to qs. */
const PROTOTYPE_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** qs's utf-8 decoder: `+` is a space; a broken escape leaves the text as it was. */
function decode(s: string): string {
  if (s.indexOf('%') === -1) return s.indexOf('+') === -1 ? s : s.replace(/\+/g, ' ');
  const plain = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plain);
  } catch {
    return plain;
  }
}

/** `name[a][b]` → ['name', 'a', 'b'], or undefined if the key is not of that simple form. */
function segmentsOf(key: string, depth: number): string[] | undefined {
  const open = key.indexOf('[');
  const parent = open === -1 ? key : key.slice(0, open);
  if (!NAME.test(parent) || PROTOTYPE_NAMES.has(parent)) return undefined;
  const out = [parent];
  let at = open;
  while (at !== -1 && at < key.length) {
    if (key.charCodeAt(at) !== 0x5b) return undefined;
    const close = key.indexOf(']', at);
    if (close === -1) return undefined;
    const name = key.slice(at + 1, close);
    if (!NAME.test(name) || PROTOTYPE_NAMES.has(name)) return undefined;
    out.push(name);
    if (out.length - 1 > depth) return undefined;
    at = close + 1;
  }
  return out;
}

type Tree = { [key: string]: string | Tree };

export function parseSimpleForm(
  raw: string,
  limits: { depth: number; parameterLimit: number },
): Record<string, unknown> | undefined {
  // As qs does, before anything else: encoded brackets count as brackets.
  const clean = raw.indexOf('%5') === -1 ? raw : raw.replace(/%5B/gi, '[').replace(/%5D/gi, ']');
  const parts = clean.split('&');
  if (parts.length > limits.parameterLimit) return undefined;
  const root: Tree = {};
  for (const part of parts) {
    if (part.length === 0) continue; // qs skips empty keys
    const bracketEquals = part.indexOf(']=');
    const pos = bracketEquals === -1 ? part.indexOf('=') : bracketEquals + 1;
    if (pos <= 0) return undefined;
    const segments = segmentsOf(decode(part.slice(0, pos)), limits.depth);
    if (!segments) return undefined;
    let node = root;
    const last = segments.length - 1;
    for (let i = 0; i < last; i++) {
      const name = segments[i]!;
      const next = node[name];
      if (next === undefined) node = node[name] = {};
      else if (typeof next === 'string') return undefined;
      else node = next;
    }
    if (node[segments[last]!] !== undefined) return undefined; // repeated or both leaf and map
    node[segments[last]!] = decode(part.slice(pos + 1));
  }
  return root;
}
