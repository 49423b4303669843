/**
 * A fast path for the usual shape of a Bitrix24 delivery: `&`-separated `key=value` pairs
 * whose keys are a name followed by `[name]` segments (`data[FIELDS][ID]`, percent-encoded
 * or not), every key once. On such a body it returns exactly what `qs.parse` returns with
 * the intake's options (checked against qs on generated bodies in
 * test/unit/form-fast.test.ts) at a fraction of the cost; qs was about a fifth of the
 * intake's CPU per delivery. Anything else — array keys (`[0]`, `[]`), repeated keys, dots,
 * prototype names, keys deeper than the limit, parts without `=` — returns `undefined`, and
 * the caller lets qs decide, limits and errors included.
 *
 * qs turns every `%5B`/`%5D` of the body into `[`/`]` before anything else. This reads the
 * body as it came instead, which halves the cost of a usual delivery: a key of name
 * characters and brackets (plain or encoded) followed by `=` is read character by character;
 * any other part takes qs's steps on its own text. A value decodes to the same text either
 * way (`%5B` decodes to `[`); only a broken escape, which leaves the text undecoded, needs
 * the brackets turned first.
 */

/** Names qs refuses as keys (allowPrototypes: false) — left to qs. */
const PROTOTYPE_NAMES = new Set(Object.getOwnPropertyNames(Object.prototype));

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What qs does to the whole body first. */
const turnBrackets = (s: string) =>
  s.indexOf('%5') === -1 ? s : s.replace(/%5B/gi, '[').replace(/%5D/gi, ']');

const spaces = (s: string) => (s.indexOf('+') === -1 ? s : s.replace(/\+/g, ' '));

/**
 * qs's utf-8 decoder: `+` is a space; a broken escape leaves the text as it was (`broken`
 * gives it: the text itself, or with its brackets turned when they were not yet).
 */
function decodeWith(s: string, broken: (plain: string) => string): string {
  const plain = spaces(s);
  if (plain.indexOf('%') === -1) return plain;
  try {
    return decodeURIComponent(plain);
  } catch {
    return broken(plain);
  }
}

const decode = (s: string) => decodeWith(s, (plain) => plain);

/** `decode(turnBrackets(s))`: `%5B` decodes to `[` anyway. */
const decodeAsCame = (s: string) => decodeWith(s, turnBrackets);

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

/** `[A-Za-z0-9_]` */
const isNameChar = (c: number) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f;

/** The length of `open` (`[`, `%5B`, `%5b`; or `]`, `%5D`, `%5d` for a close) at `i`, else 0. */
function bracketAt(s: string, i: number, close: boolean): number {
  const c = s.charCodeAt(i);
  if (c === (close ? 0x5d : 0x5b)) return 1;
  if (c !== 0x25 || s.charCodeAt(i + 1) !== 0x35) return 0;
  return (s.charCodeAt(i + 2) | 0x20) === (close ? 0x64 : 0x62) ? 3 : 0;
}

/** A name of `s[from, to)` that qs would take: not empty, no leading digit, no prototype name. */
function nameAt(s: string, from: number, to: number): string | undefined {
  if (to === from) return undefined;
  const c = s.charCodeAt(from);
  if (c >= 0x30 && c <= 0x39) return undefined;
  const name = s.slice(from, to);
  return PROTOTYPE_NAMES.has(name) ? undefined : name;
}

/** A found key: its segments and where its value starts. */
let valueAt = 0;

/**
 * The key of the part `s[from, to)` as it came, when it is a name and `[name]` segments with
 * plain or encoded brackets, then `=`: its segments (the value starts at `valueAt`). Else
 * undefined, and the part takes qs's steps.
 */
function simpleKey(s: string, from: number, to: number, depth: number): string[] | undefined {
  let i = from;
  while (i < to && isNameChar(s.charCodeAt(i))) i++;
  const parent = nameAt(s, from, i);
  if (parent === undefined) return undefined;
  const out = [parent];
  let open: number;
  while (i < to && (open = bracketAt(s, i, false)) > 0) {
    const start = i + open;
    i = start;
    while (i < to && isNameChar(s.charCodeAt(i))) i++;
    const close = i < to ? bracketAt(s, i, true) : 0;
    const name = close > 0 ? nameAt(s, start, i) : undefined;
    if (name === undefined || out.length > depth) return undefined;
    out.push(name);
    i += close;
  }
  if (i >= to || s.charCodeAt(i) !== 0x3d) return undefined;
  // qs splits a part at its first `]=` when there is one: after a bare name, a `]=` in the
  // value would make the key run into it.
  if (out.length === 1) {
    const value = s.slice(i + 1, to);
    if (value.indexOf(']=') !== -1 || /%5d=/i.test(value)) return undefined;
  }
  valueAt = i + 1;
  return out;
}

type Tree = { [key: string]: string | Tree };

/** qs's steps for one part (brackets turned already): its key's segments and value. */
function slowPart(part: string, depth: number): [string[], string] | undefined {
  const bracketEquals = part.indexOf(']=');
  const pos = bracketEquals === -1 ? part.indexOf('=') : bracketEquals + 1;
  if (pos <= 0) return undefined;
  const segments = segmentsOf(decode(part.slice(0, pos)), depth);
  return segments && [segments, decode(part.slice(pos + 1))];
}

export function parseSimpleForm(
  raw: string,
  limits: { depth: number; parameterLimit: number },
): Record<string, unknown> | undefined {
  const root: Tree = {};
  let parts = 0;
  for (let from = 0; from <= raw.length;) {
    let to = raw.indexOf('&', from);
    if (to === -1) to = raw.length;
    if (++parts > limits.parameterLimit) return undefined;
    const start = from;
    from = to + 1;
    if (to === start) continue; // qs skips empty keys
    let segments = simpleKey(raw, start, to, limits.depth);
    let value: string;
    if (segments) value = decodeAsCame(raw.slice(valueAt, to));
    else {
      const slow = slowPart(turnBrackets(raw.slice(start, to)), limits.depth);
      if (!slow) return undefined;
      [segments, value] = slow;
    }
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
    node[segments[last]!] = value;
  }
  return root;
}
