import { missingScope, scopeOfEvent, scopeOfRoot, scopesOfMethod } from '../bitrix/scopes.js';
import { fieldRoot } from './fields.js';
import type { EventMap } from './model.js';
import { templateRoots } from './templates.js';
import { jsonPath, type MapError, type ValidationResult } from './validate.js';

/**
 * Problems of a valid map that the portal would refuse: a rule on an event outside the
 * app's scopes is never delivered (event.bind answers ERROR_EVENT_NOT_FOUND), and reading
 * or writing a record outside them answers `insufficient_scope`. Refused at import and at
 * save, each with its JSON path.
 */
export function scopeErrors(map: EventMap, granted: readonly string[]): MapError[] {
  const errors: MapError[] = [];
  map.rules.forEach((rule, i) => {
    rule.on.forEach((event, j) => {
      const why = missingScope(scopeOfEvent(event), granted);
      if (why) errors.push({ path: jsonPath(['rules', i, 'on', j]), message: `${event} ${why}` });
    });
    (rule.when ?? []).forEach((c, j) => {
      const root = fieldRoot(c.field);
      const why = missingScope(scopeOfRoot(root), granted);
      if (why)
        errors.push({
          path: jsonPath(['rules', i, 'when', j, 'field']),
          message: `reading ${root} records ${why}`,
        });
    });
    rule.actions.forEach((a, j) => {
      for (const root of templateRoots(a)) {
        const why = missingScope(scopeOfRoot(root), granted);
        if (why)
          errors.push({
            path: jsonPath(['rules', i, 'actions', j]),
            message: `reading ${root} records ${why}`,
          });
      }
      if (a.type === 'bitrix') {
        const why = missingScope(scopesOfMethod(a.method), granted);
        if (why)
          errors.push({
            path: jsonPath(['rules', i, 'actions', j, 'method']),
            message: `${a.method} ${why}`,
          });
      }
    });
  });
  return errors;
}

/** A valid map, or the scope problems that refuse it. */
export function withScopeErrors(map: EventMap, granted: readonly string[]): ValidationResult {
  const errors = scopeErrors(map, granted);
  return errors.length > 0 ? { ok: false, errors } : { ok: true, map };
}
