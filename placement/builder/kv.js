/*
 * Name/value rows of the rule builder (builder.js) and the JSON objects they stand for:
 * an http body, headers, a REST method's parameters (`fields.COMMENT` nests).
 */
export const isObj = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{a: {b: "x"}}` → `[["a.b", "x"]]`; undefined when a value is not text (JSON only). */
export function flatten(obj, nest) {
  const out = [];
  const walk = (o, prefix) => {
    for (const [k, v] of Object.entries(o)) {
      if (k.includes('.') && nest) return false;
      const key = prefix ? `${prefix}.${k}` : k;
      if (nest && isObj(v) && Object.keys(v).length) {
        if (walk(v, key) === false) return false;
      } else if (typeof v === 'string') out.push([key, v]);
      else return false;
    }
    return true;
  };
  return walk(obj, '') === false ? undefined : out;
}
export function unflatten(rows, nest) {
  const out = {};
  for (const [k, v] of rows) {
    if (!k) continue;
    const parts = nest ? k.split('.') : [k];
    let o = out;
    for (const p of parts.slice(0, -1)) o = isObj(o[p]) ? o[p] : (o[p] = {});
    o[parts[parts.length - 1]] = v;
  }
  return out;
}

/**
 * Why each row cannot stand as typed, as a message name of the page's strings, or null: a
 * value without a name, a name used twice (header names in any case), a name that is both a
 * value and a group (`a` and `a.b`, when names nest). Such rows would be dropped or
 * overwritten in the JSON, so the builder says so and does not save.
 */
export function rowProblems(rows, nest, caseless) {
  const norm = (k) => (caseless ? k.toLowerCase() : k);
  const names = rows.map(([k]) => norm(k)).filter(Boolean);
  const seen = new Set();
  return rows.map(([k, v]) => {
    if (!k) return v ? 'kvNoName' : null;
    const n = norm(k);
    if (seen.has(n)) return 'kvDuplicate';
    seen.add(n);
    if (nest && names.some((o) => o.startsWith(`${n}.`) || n.startsWith(`${o}.`))) return 'kvClash';
    return null;
  });
}
