import { CONTEXT_ROOTS, entityRoot } from './context.js';
import { upperFieldName } from './fields.js';
import type { Action, Condition, Rule, Scalar } from './model.js';

/**
 * A rule in words, for the map page: its conditions ("Stage becomes WON", "Amount equals
 * 1500", "Responsible changed", "Stage is one of NEW, WON") and where its steps go ("POST to
 * accounting.example", "SMS to {{contact.PHONE}}"). The sentences come from a dictionary
 * the caller passes (server/ui/i18n-map.ts has English and Russian), so this layer holds no
 * language; data (codes, values, names, hosts) stays as written and is marked as data.
 *
 * Give it a map whose credentials are masked (secret-fields.ts `maskMap`): an http step's
 * host is shown, never its user:password or query.
 */

/** A piece of a sentence: words of the page's language, or data shown as written. */
export interface Part {
  text: string;
  /** A code, value, name or address: never translated. */
  data?: true;
}
export type Phrase = Part[];

/**
 * The words of one language. Keys: `map.cond.<operator>` and `map.step.<kind>` sentences with
 * `{field}`, `{value}`, `{method}`, … placeholders; `map.field.<FIELD>` field labels;
 * `map.root.<root>` record labels; `map.value.*`, `map.stage.inPipeline`.
 */
export type MapWords = (key: string) => string | undefined;

/**
 * A deal stage's (or a lead's stage's, a quote's or an old invoice's status's) name, where the
 * portal's list is known (server/rules/metadata.ts).
 */
export interface StageName {
  name: string;
  /** The pipeline's name (deals with several pipelines). */
  pipeline?: string;
  /** The pipeline is the portal's default one (stage codes without a `C<n>:` prefix). */
  inDefault?: boolean;
}
/**
 * Looks up a stage code: a deal's (`WON`, `C1:WON`), or with `record` `lead` a lead's
 * (`CONVERTED`, the status list STATUS), `quote` a quote's status (`APPROVED`, QUOTE_STATUS),
 * `invoice` an old invoice's (`P`, INVOICE_STATUS).
 */
export type StageNames = (code: string, record?: StageRecord) => StageName | undefined;
/** The records whose stage or status codes a portal's status lists name. */
export type StageRecord = 'deal' | 'lead' | 'quote' | 'invoice';

/**
 * Whose stage or status list a field of `record` names: a deal's STAGE_ID, a lead's, a
 * quote's or an old invoice's STATUS_ID.
 */
export function stageRecord(field: string, record: string | undefined): StageRecord | undefined {
  const name = upperFieldName(field);
  if (record === 'deal' && name === 'STAGE_ID') return 'deal';
  if ((record === 'lead' || record === 'quote' || record === 'invoice') && name === 'STATUS_ID') {
    return record;
  }
  return undefined;
}

/** `stages` for the codes of one record's stage field, or none when the field is no stage. */
export const stagesFor = (
  stages: StageNames | undefined,
  record: StageRecord | undefined,
): StageNames | undefined => (record && stages ? (code) => stages(code, record) : undefined);

const ROOTS: ReadonlySet<string> = new Set(CONTEXT_ROOTS);
/**
 * Roots whose fields are a CRM record's, named by `map.field.*` (not `event.name`, which is
 * not a contact's "First name", nor `portal.*` or `steps.*`).
 */
export const RECORD_ROOTS: ReadonlySet<string> = new Set(
  CONTEXT_ROOTS.filter((r) => r !== 'event' && r !== 'steps' && r !== 'portal'),
);

/** The context root a condition's field belongs to: its own root, or the rule's record. */
function recordOf(field: string, rule: Rule): string | undefined {
  const first = field.split('.')[0] ?? '';
  if (ROOTS.has(first) && field.includes('.') && first !== 'entity') return first;
  const roots = new Set(rule.on.map((e) => entityRoot(null, e)));
  return roots.size === 1 ? [...roots][0] : undefined;
}

/** Whose stage a condition compares (the codes a portal's stage lists name), if any. */
const stageOf = (field: string, rule: Rule): StageRecord | undefined =>
  stageRecord(field.split('.').pop() ?? '', recordOf(field, rule));

/** Fills `{name}` placeholders of a sentence with phrases. */
export function fill(template: string, vars: Record<string, Phrase>): Phrase {
  const out: Phrase = [];
  for (const piece of template.split(/(\{\w+\})/)) {
    const name = /^\{(\w+)\}$/.exec(piece)?.[1];
    const v = name === undefined ? undefined : vars[name];
    if (v) out.push(...v);
    else if (piece) out.push({ text: piece });
  }
  return out;
}

const data = (text: string): Phrase => [{ text, data: true }];
const say = (words: MapWords, key: string, vars: Record<string, Phrase> = {}): Phrase =>
  fill(words(key) ?? key, vars);

/** The whole phrase as text (tests, titles). */
export const plain = (p: Phrase): string => p.map((x) => x.text).join('');

/** A field's label: `Stage`; a path into another record: `Contact · Phone`; else the code. */
function fieldLabel(field: string, rule: Rule, words: MapWords): Phrase {
  const segments = field.split('.');
  const first = segments[0] ?? '';
  const root = ROOTS.has(first) && segments.length > 1 ? first : undefined;
  const rest = root ? segments.slice(1) : segments;
  const own =
    root === undefined || root === 'entity' || rule.on.some((e) => entityRoot(null, e) === root);
  const record = root === undefined || RECORD_ROOTS.has(root);
  const name =
    record && rest.length === 1 ? words(`map.field.${upperFieldName(rest[0]!)}`) : undefined;
  const label: Phrase = name ? [{ text: name }] : data(rest.join('.'));
  if (own) return label;
  const rootName = words(`map.root.${root}`);
  return [...(rootName ? [{ text: rootName }] : data(root!)), { text: ' · ' }, ...label];
}

/** The words for the codes of a field whose values are a fixed list (an activity's type). */
export type CodeWords = (code: string) => string | undefined;

/**
 * The words for a `record`'s field whose values are a fixed list of codes, if it is one. An
 * activity's TYPE_ID: 1 meeting, 2 call, 3 task, 4 e-mail, 5 calendar event, 6 an app's
 * (CORE: crm/classes/general/crm_activity.php `CCrmActivityType`), the builder's list; a
 * deal's or lead's stage group (SEMANTICS).
 */
export function fixedCodeWords(
  field: string,
  record: string | undefined,
  words: MapWords,
): CodeWords | undefined {
  const name = upperFieldName(field);
  if (record === 'activity' && name === 'TYPE_ID')
    return (code) => words(`map.value.activityType.${code}`);
  if (
    (record === 'deal' && name === 'STAGE_SEMANTIC_ID') ||
    (record === 'lead' && name === 'STATUS_SEMANTIC_ID')
  )
    return (code) => (SEMANTICS.includes(code) ? words(`map.value.semantic.${code}`) : undefined);
  return undefined;
}

/**
 * A deal's STAGE_SEMANTIC_ID and a lead's STATUS_SEMANTIC_ID: the group of its stage, P in
 * progress, S successful, F failed (CORE crm/lib/phasesemantics.php `PhaseSemantics`), in
 * every pipeline: "Stage group becomes Successful" is a deal won in any of them.
 */
const SEMANTICS = ['P', 'S', 'F'];

const codeWords = (field: string, rule: Rule, words: MapWords): CodeWords | undefined =>
  fixedCodeWords(field.split('.').pop() ?? '', recordOf(field, rule), words);

function value(v: Scalar, words: MapWords, stages?: StageNames, codes?: CodeWords): Phrase {
  if (v === null || v === '') return say(words, 'map.value.empty');
  const text = String(v);
  const named = codes?.(text);
  if (named) return [{ text: named }];
  const stage = stages?.(text);
  if (!stage) return data(text);
  if (!stage.pipeline) return data(stage.name);
  return say(words, 'map.stage.inPipeline', {
    stage: data(stage.name),
    pipeline: data(stage.pipeline),
  });
}

/** One condition in words. */
export function describeCondition(
  c: Condition,
  rule: Rule,
  words: MapWords,
  stages?: StageNames,
): Phrase {
  const field = fieldLabel(c.field, rule, words);
  // Only a deal's or a lead's stage codes, a quote's or an old invoice's status codes, are
  // names in the portal's lists.
  stages = stagesFor(stages, stageOf(c.field, rule));
  const codes = codeWords(c.field, rule, words);
  if ('changed' in c) return say(words, 'map.cond.changed', { field });
  if ('becomes' in c)
    return say(words, 'map.cond.becomes', {
      field,
      value: value(c.becomes, words, stages, codes),
    });
  if ('equals' in c)
    return say(words, 'map.cond.equals', { field, value: value(c.equals, words, stages, codes) });
  const list = c.in.flatMap((v, i) => [
    ...(i > 0 ? [{ text: ', ' }] : []),
    ...value(v, words, stages, codes),
  ]);
  return say(words, 'map.cond.in', { field, value: list });
}

/** Every condition of a rule in words; a rule without any matches every event it is on. */
export function describeConditions(rule: Rule, words: MapWords, stages?: StageNames): Phrase[] {
  const when = rule.when ?? [];
  if (when.length === 0) return [say(words, 'map.cond.none')];
  return when.map((c) => describeCondition(c, rule, words, stages));
}

/** An http step's host (`accounting.example`), from a URL whose credentials are masked. */
export function urlHost(url: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^/?#@\s]*@)?([^/?#\s]*)/i.exec(url);
  return m?.[1] || (url.length > 60 ? `${url.slice(0, 57)}...` : url);
}

/** A value that is one placeholder and nothing else (`{{contact.PHONE}}`): its path. */
const LONE_PLACEHOLDER = /^\{\{\s*([A-Za-z_][\w]*(?:\.[\w]+)+)\s*\}\}$/;

/**
 * A recipient in words: one placeholder is the field it reads ("Contact · Phone", as a
 * condition names it; a manager read "SMS to {{contact.PHONE}}" as code), anything else as
 * written.
 */
function recipient(v: string, rule: Rule | undefined, words: MapWords): Phrase {
  const path = rule && LONE_PLACEHOLDER.exec(v.trim())?.[1];
  return path && !path.startsWith('steps.')
    ? say(words, 'map.step.fromField', { field: fieldLabel(path, rule, words) })
    : data(v);
}

/** Where a step goes, in words (`rule`: its rule, for the names of fields it sends to). */
export function describeStep(action: Action, words: MapWords, rule?: Rule): Phrase {
  switch (action.type) {
    case 'http': {
      const host =
        typeof action.url === 'string'
          ? data(urlHost(action.url))
          : '$env' in action.url
            ? say(words, 'map.step.envUrl', { name: data(action.url.$env) })
            : say(words, 'map.step.sealedUrl');
      return say(words, 'map.step.http', { method: data(action.method), host });
    }
    case 'telegram':
      return action.chatId === undefined
        ? say(words, 'map.step.telegramDefault')
        : say(words, 'map.step.telegram', { chat: data(String(action.chatId)) });
    case 'email': {
      const list = Array.isArray(action.to) ? action.to : [action.to];
      const to = list.flatMap((v, i) => [
        ...(i > 0 ? [{ text: ', ' }] : []),
        ...recipient(String(v), rule, words),
      ]);
      return say(words, 'map.step.email', { to });
    }
    case 'sms':
      return say(words, 'map.step.sms', { to: recipient(String(action.to), rule, words) });
    case 'bitrix': {
      const on = commentOn(action);
      return on
        ? say(words, `map.step.comment.${on}`)
        : say(words, 'map.step.bitrix', { method: data(action.method) });
    }
  }
}

/** The kinds of record a timeline comment step is described on (`map.step.comment.*`). */
const COMMENT_ON = ['deal', 'lead', 'contact', 'company', 'quote', 'item', 'invoice'] as const;

/**
 * Whose timeline a `crm.timeline.comment.add` step writes to, by its `fields.ENTITY_TYPE` (a
 * CRM owner type name, any case: CORE crm lib/controller/timeline/comment.php
 * `fetchFieldsToAdd` resolves it with `CCrmOwnerType::ResolveID`): `dynamic_128` is a
 * smart-process item, `smart_invoice` (or an old `invoice`) an invoice. Undefined for another method or a type
 * given otherwise (a template), which the step is then described by its method.
 */
export function commentOn(action: Action): (typeof COMMENT_ON)[number] | undefined {
  if (action.type !== 'bitrix' || action.method.toLowerCase() !== 'crm.timeline.comment.add')
    return undefined;
  const fields = action.params?.fields;
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
  const type = (fields as Record<string, unknown>).ENTITY_TYPE;
  if (typeof type !== 'string') return undefined;
  const name = type.trim().toLowerCase();
  if (/^dynamic_\d+$/.test(name)) return 'item';
  if (name === 'smart_invoice') return 'invoice';
  return COMMENT_ON.find((k) => k === name && k !== 'item');
}
