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
