/*
 * Element helpers of the rule builder (builder.js): small enough to need no library. A
 * read-only page (a non-admin's) gets every control disabled as it is made.
 */
export function createDom({ readOnly }) {
  /** `h('input', {id: 'x', value: 'y'}, child…)`: an element with properties and children. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false || k === 'keepEnabled') continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = String(v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'class') el.className = v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat(Infinity))
      if (c !== null && c !== undefined && c !== false) el.append(c);
    if (readOnly && /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(el.tagName) && !props?.keepEnabled) {
      el.disabled = true;
    }
    return el;
  }
  /** `el.replaceChildren` without the "null" / "false" text it would make of skipped parts. */
  const fill = (el, ...children) =>
    el.replaceChildren(
      ...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false),
    );
  const label = (text, control) => h('label', {}, h('span', { text }), control);
  /** An option whose text is the portal's data (names, codes): never translated. */
  const opt = (value, text, selected) =>
    h('option', { value, text, selected: selected === true, translate: 'no' });

  return { h, fill, label, opt };
}
