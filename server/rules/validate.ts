import type { z } from 'zod';
import type { MapWarning } from './check-map.js';
import type { EventMap, Rule } from './model.js';
import { eventMapSchema } from './schema.js';
import { maskUrlText } from '../lib/url-secrets.js';
import { parsePlaceholder, placeholders } from './templates.js';

export { checkMap, type CheckOptions, type MapWarning } from './check-map.js';

/** One problem in an event map: where (`$.rules[0].actions[1].url`) and what was expected. */
export interface MapError {
  path: string;
  message: string;
}

export type ValidationResult = { ok: true; map: EventMap } | { ok: false; errors: MapError[] };

/** `['rules', 0, 'actions', 1, 'url']` → `$.rules[0].actions[1].url`. */
export function jsonPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '$';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_$][\w$]*$/.test(p)) out += `.${p}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}

/** What arrived, in a few words: `number 5`, `nothing`, `an object`. */
function got(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null';
  if (Array.isArray(input)) return `a list of ${input.length}`;
  if (typeof input === 'object') return 'an object';
  // A step's URL may carry its credentials (user:password, a key in the query or the path):
  // the message goes where the map's masked text goes (the CLI, the rules page), so it is
  // masked the same way.
  const s = JSON.stringify(typeof input === 'string' ? maskUrlText(input) : input);
  return `${typeof input} ${s.length > 40 ? `${s.slice(0, 37)}...` : s}`;
}

function describeIssue(issue: z.core.$ZodIssue & { input?: unknown }): MapError[] {
  const path = jsonPath(issue.path);
  switch (issue.code) {
    case 'invalid_type':
      return [
        {
          path,
          message:
            issue.input === undefined
              ? `expected ${issue.expected}; it is missing`
              : `expected ${issue.expected}, got ${got(issue.input)}`,
        },
      ];
    case 'unrecognized_keys':
      return issue.keys.map((k) => ({
        path: jsonPath([...issue.path, k]),
        message: `unknown key "${k}"`,
      }));
    case 'invalid_union':
      if ('discriminator' in issue && issue.discriminator) {
        const options = ((issue as { options?: unknown[] }).options ?? []) as unknown[];
        const obj = issue.input as Record<string, unknown> | undefined;
        const value = obj && typeof obj === 'object' ? obj[issue.discriminator] : undefined;
        return [
          {
            path,
            message: `expected ${issue.discriminator} to be one of ${options.map((o) => JSON.stringify(o)).join(', ')}, got ${got(value)}`,
          },
        ];
      }
      return [{ path, message: `${issue.message}, got ${got(issue.input)}` }];
    case 'invalid_value':
      return [
        {
          path,
          message: `expected ${issue.values.length > 2 ? 'one of ' : ''}${issue.values.map((v) => JSON.stringify(v)).join(issue.values.length > 2 ? ', ' : ' or ')}, got ${got(issue.input)}`,
        },
      ];
    case 'too_small':
      // Nothing given where something is needed: said in words, not as a length.
      if (issue.input === '') return [{ path, message: 'required; it is empty' }];
      if (Array.isArray(issue.input) && issue.input.length === 0 && Number(issue.minimum) === 1)
        return [{ path, message: 'expected at least one; the list is empty' }];
      return [
        { path, message: `${issue.message.replace(/^Too small: /, '')}, got ${got(issue.input)}` },
      ];
    case 'too_big':
      return [
        { path, message: `${issue.message.replace(/^Too big: /, '')}, got ${got(issue.input)}` },
      ];
    case 'invalid_key': {
      // A record's key (a header name): say what the key's own rule expects.
      const inner = (issue as { issues?: Array<{ message?: string }> }).issues?.[0]?.message;
      return [{ path, message: `${inner ?? issue.message}, got ${got(issue.input)}` }];
    }
    case 'custom':
      // An empty URL or the like: said as empty first, what it should be after, rather than
      // `expected an http(s) URL…, got string ""` (a walk's admin read the latter as code).
      if (issue.input === '') return [{ path, message: `it is empty; ${issue.message}` }];
      return [
        {
          path,
          message: /\bgot\b/.test(issue.message)
            ? issue.message
            : `${issue.message}, got ${got(issue.input)}`,
        },
      ];
    default: {
      const msg = issue.message.replace(/^Invalid input: /, '');
      if (issue.input === '') return [{ path, message: `it is empty; ${msg}` }];
      return [
        { path, message: issue.input === undefined ? msg : `${msg}, got ${got(issue.input)}` },
      ];
    }
  }
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * What makes two rule names one: "Paid" and "paid " would stand side by side on the rules
 * page and in the log's rule filter with nothing to tell them apart.
 */
export const ruleNameKey = (name: string): string => name.trim().toLowerCase();

/**
 * Checks that zod cannot express, on the raw input so they are reported alongside schema
 * errors: unique rule names, unique step names, templates that parse, and `{{steps.x}}`
 * naming an earlier step of the same rule.
 */
function crossChecks(json: unknown): MapError[] {
  const errors: MapError[] = [];
  if (!isObj(json) || !Array.isArray(json.rules)) return errors;
  const names = new Map<string, { index: number; name: string }>();
  json.rules.forEach((r, ri) => {
    if (!isObj(r)) return;
    if (typeof r.name === 'string' && r.name.trim()) {
      const first = names.get(ruleNameKey(r.name));
      if (first !== undefined) {
        errors.push({
          path: jsonPath(['rules', ri, 'name']),
          message:
            `expected a unique rule name; "${r.name}" is also the name of $.rules[${first.index}]` +
            (first.name === r.name.trim()
              ? ''
              : ` ("${first.name}"; names that differ only in capitals count as one)`),
        });
      } else names.set(ruleNameKey(r.name), { index: ri, name: r.name.trim() });
    }
    if (!Array.isArray(r.actions)) return;
    const steps = new Set<string>();
    r.actions.forEach((a, ai) => {
      if (!isObj(a)) return;
      const at = ['rules', ri, 'actions', ai];
      for (const [key, value] of Object.entries(a)) {
        if (key === 'type' || key === 'name') continue;
        for (const raw of placeholders(value)) {
          let segments: string[];
          try {
            segments = parsePlaceholder(raw).path.segments;
          } catch (e) {
            errors.push({ path: jsonPath([...at, key]), message: (e as Error).message });
            continue;
          }
          if (segments[0] === 'steps' && !steps.has(segments[1] ?? '')) {
            errors.push({
              path: jsonPath([...at, key]),
              message: `template {{${raw}}} expects an earlier step named "${segments[1] ?? ''}" in this rule; earlier steps: ${[...steps].join(', ') || 'none with a name'}`,
            });
          }
        }
      }
      errors.push(...timelineCommentChecks(a, at));
      if (typeof a.name === 'string') {
        if (steps.has(a.name)) {
          errors.push({
            path: jsonPath([...at, 'name']),
            message: `expected a unique step name within the rule; "${a.name}" is used twice`,
          });
        }
        steps.add(a.name);
      }
    });
  });
  return errors;
}

/**
 * What `crm.timeline.comment.add` requires in its `fields` (the method's doc page), read by
 * these exact names (CORE crm lib/controller/timeline/comment.php `fetchFieldsToAdd`:
 * `$fields['ENTITY_ID']`, `['ENTITY_TYPE']` or `['ENTITY_TYPE_ID']`, `['COMMENT']`).
 */
const TIMELINE_COMMENT_FIELDS = ['ENTITY_ID', 'ENTITY_TYPE', 'COMMENT'];

/**
 * A `bitrix` step adding a timeline comment: since crm 23.100.0 the method takes its fields
 * only under the lower-case key `fields` ("Other undocumented variants (Fields, FIELDS,
 * arFields) are not accepted", b24restdocs api-reference/crm/timeline/comments/
 * crm-timeline-comment-add.md), and ENTITY_ID, ENTITY_TYPE and COMMENT are required. Said at
 * save time: on the portal every event would fail at that step.
 */
function timelineCommentChecks(a: Record<string, unknown>, at: PropertyKey[]): MapError[] {
  if (a.type !== 'bitrix' || typeof a.method !== 'string') return [];
  if (a.method.toLowerCase() !== 'crm.timeline.comment.add' || !isObj(a.params)) return [];
  const params = a.params;
  const wrong = Object.keys(params).filter(
    (k) => k !== 'fields' && (k.toLowerCase() === 'fields' || k === 'arFields'),
  );
  if (wrong.length > 0) {
    return wrong.map((k) => ({
      path: jsonPath([...at, 'params', k]),
      message: `expected "fields" in lower case: crm.timeline.comment.add does not take "${k}" (Bitrix24 CRM 23.100.0 and later)`,
    }));
  }
  const fields = params.fields;
  if (!isObj(fields)) {
    return [
      {
        path: jsonPath([...at, 'params', 'fields']),
        message: `expected an object with ${TIMELINE_COMMENT_FIELDS.join(', ')}, got ${got(fields)}`,
      },
    ];
  }
  // Another case is not the field: `entity_id` left the owner 0, and every event failed with
  // OWNER_NOT_FOUND (or "Empty comment message" for `comment`).
  const known = [...TIMELINE_COMMENT_FIELDS, 'ENTITY_TYPE_ID'];
  const cased = Object.keys(fields).filter(
    (k) => !known.includes(k) && known.includes(k.toUpperCase()),
  );
  if (cased.length > 0) {
    return cased.map((k) => ({
      path: jsonPath([...at, 'params', 'fields', k]),
      message: `expected "${k.toUpperCase()}" in capitals: crm.timeline.comment.add reads its fields by their exact names`,
    }));
  }
  const has = (f: string) => Object.hasOwn(fields, f);
  const missing = TIMELINE_COMMENT_FIELDS.filter(
    (f) => !has(f) && !(f === 'ENTITY_TYPE' && has('ENTITY_TYPE_ID')),
  );
  return missing.length === 0
    ? []
    : [
        {
          path: jsonPath([...at, 'params', 'fields']),
          message: `crm.timeline.comment.add needs ${missing.join(', ')}`,
        },
      ];
}

/** Nesting a map may have: far more than any rule needs, far less than the stack holds. */
export const MAX_DEPTH = 64;

/**
 * The path of the first value nested deeper than MAX_DEPTH, or undefined. Walked without
 * recursion: the schema check and everything after it recurse, and a body nested a few
 * thousand levels deep overflowed the stack (a 500 instead of an error naming the place).
 */
function tooDeep(json: unknown): string | undefined {
  const stack: Array<{ value: unknown; path: PropertyKey[] }> = [{ value: json, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (path.length >= MAX_DEPTH) return jsonPath(path);
    for (const [k, v] of Object.entries(value)) {
      stack.push({ value: v, path: [...path, Array.isArray(value) ? Number(k) : k] });
    }
  }
  return undefined;
}

/**
 * The largest map kept, in bytes of its JSON. Every event of the portal reads and parses its
 * map, and every save checks and seals it whole, on the main thread: a red-team helper saved
 * 24 rules of 900 KB each through the builder, and each save of that 21.6 MB map held every
 * portal's deliveries and events for 1.35 s. At this size a parse takes about 0.8 ms. A map
 * of 200 long rules is under 200 KB.
 */
export const MAX_MAP_BYTES = 256 * 1024;

const kb = (bytes: number) => `${Math.ceil(bytes / 1024).toLocaleString('en-US')} KB`;

/** The map's size in bytes of JSON, when over `allowed`. */
function tooLarge(json: unknown, allowed: number): MapError | undefined {
  const bytes = Buffer.byteLength(JSON.stringify(json) ?? '', 'utf8');
  if (bytes <= allowed) return undefined;
  return {
    path: '$',
    message:
      `the map is ${kb(bytes)}; at most ${kb(MAX_MAP_BYTES)} is kept: remove rules, or ` +
      'shorten their templates',
  };
}

/**
 * Validates an event map (server/rules/README.md) and lists every problem with its JSON path and
 * what was expected, e.g. `$.rules[0].actions[1].url: expected string, got number 5`.
 * `allowedBytes`: its largest size (MAX_MAP_BYTES, or a stored map's own size when it was
 * larger already: it may still shrink).
 */
export function validateEventMap(json: unknown, allowedBytes = MAX_MAP_BYTES): ValidationResult {
  const deep = tooDeep(json);
  if (deep) {
    return {
      ok: false,
      errors: [{ path: deep, message: `expected at most ${MAX_DEPTH} levels of nesting` }],
    };
  }
  const large = tooLarge(json, allowedBytes);
  if (large) return { ok: false, errors: [large] };
  const parsed = eventMapSchema.safeParse(json, { reportInput: true });
  const errors = [
    ...(parsed.success ? [] : parsed.error.issues.flatMap((i) => describeIssue(i))),
    ...crossChecks(json),
  ];
  if (errors.length > 0 || !parsed.success) return { ok: false, errors };
  return { ok: true, map: parsed.data as EventMap };
}

/** `$.path: message` lines, one per error. */
export function formatMapErrors(errors: readonly MapError[]): string {
  return errors.map((e) => `${e.path}: ${e.message}`).join('\n');
}

/** `$.rules[2].actions[0]` → 2; undefined for a path outside one rule. */
const ruleIndexOf = (path: string): number | undefined => {
  const m = /^\$\.rules\[(\d+)\]/.exec(path);
  return m ? Number(m[1]) : undefined;
};

/**
 * Validates a map whose rules were edited in part (the builder's one rule, a change from the
 * table, another rule in the JSON): a rule the stored map `old` already held exactly as it
 * is, and that fails a check added after it was saved (a header name with a space, say), does
 * not stop the save of the others. It is kept as it was and its problems are named in
 * `kept`; every other problem (any of the `edited` rule) is refused as by validateEventMap.
 */
export function validateKeepingOld(
  json: unknown,
  old: EventMap,
  /** The rule being edited (the builder's): its problems are always refused. */
  edited?: number,
): ValidationResult & { kept?: MapError[] } {
  // A map stored before MAX_MAP_BYTES may be edited as long as it does not grow.
  const stored = Buffer.byteLength(JSON.stringify(old), 'utf8');
  const v = validateEventMap(json, Math.max(MAX_MAP_BYTES, stored));
  if (v.ok || !isObj(json) || !Array.isArray(json.rules)) return v;
  const rules = json.rules as unknown[];
  // A problem is old when the same rule, as it is, had it in the stored map.
  const key = (rule: unknown, i: number, e: MapError) =>
    `${JSON.stringify(rule)}\n${e.path.slice(`$.rules[${i}]`.length)}\n${e.message}`;
  const was = validateEventMap(old, Infinity);
  const before = new Set(
    was.ok
      ? []
      : was.errors.flatMap((e) => {
          const i = ruleIndexOf(e.path);
          return i === undefined ? [] : [key(old.rules[i], i, e)];
        }),
  );
  const isOld = (e: MapError) => {
    const i = ruleIndexOf(e.path);
    return i !== undefined && i !== edited && before.has(key(rules[i], i, e));
  };
  const blocking = v.errors.filter((e) => !isOld(e));
  if (blocking.length > 0) return { ok: false, errors: blocking };
  const out: Rule[] = [];
  for (const [i, r] of rules.entries()) {
    if (v.errors.some((e) => ruleIndexOf(e.path) === i)) {
      out.push(r as Rule);
      continue;
    }
    const alone = validateEventMap({ rules: [r] });
    if (!alone.ok) return v;
    out.push(alone.map.rules[0]!);
  }
  return { ok: true, map: { ...json, rules: out } as EventMap, kept: v.errors };
}

/**
 * What the stored map's rules fail of the checks added since they were saved (validateKeepingOld
 * kept them): one warning per problem, under the rule, with the path inside the rule.
 */
export function savedBeforeChecks(map: EventMap): MapWarning[] {
  const v = validateEventMap(map, Infinity);
  if (v.ok) return [];
  return v.errors.flatMap((e) => {
    const i = ruleIndexOf(e.path);
    const rule = i === undefined ? undefined : map.rules[i];
    if (!rule) return [];
    const path = `$${e.path.slice(`$.rules[${i}]`.length)}`;
    return [
      {
        code: 'saved-before-check' as const,
        rules: [rule.name],
        message: `rule "${rule.name}" was saved before a check it does not pass; changes to it are saved once this is corrected: ${path}: ${e.message}`,
      },
    ];
  });
}
