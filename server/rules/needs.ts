import { RELATED_ROOTS } from './context.js';
import { fieldRoot } from './fields.js';
import type { Rule } from './model.js';
import { templateRoots } from './templates.js';

/** Every context root the rules read, in conditions (`contact.PHONE`) and templates. */
export function rootsUsed(rules: readonly Rule[]): Set<string> {
  const out = new Set<string>();
  for (const rule of rules) {
    for (const c of rule.when ?? []) out.add(fieldRoot(c.field));
    for (const a of rule.actions) for (const r of templateRoots(a)) out.add(r);
  }
  return out;
}

/**
 * The related records (`contact`, `company`) the processor must load for these rules:
 * "related records are loaded only when a template or condition needs them".
 */
export function relatedToLoad(rules: readonly Rule[]): string[] {
  const used = rootsUsed(rules);
  return RELATED_ROOTS.filter((r) => used.has(r));
}
