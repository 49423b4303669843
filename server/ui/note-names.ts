import {
  fill,
  fixedCodeWords,
  plain,
  RECORD_ROOTS,
  stageRecord,
  stagesFor,
  type MapWords,
  type StageName,
  type StageNames,
  type StageRecord,
} from '../rules/describe.js';
import { entityRoot } from '../rules/context.js';
import { upperFieldName } from '../rules/fields.js';
import type { UiUser } from './session.js';
import { translateNote } from './i18n-messages.js';

/**
 * An event's notes and its rules' reasons name what the rules compared as the rules wrote it:
 * `STAGE_ID is "NEW", not "WON"` (server/rules/conditions.ts, transitions.ts). A CRM manager
 * reads the field's name and the stage's name instead: `Stage is "New", not "Won"`, in
 * Russian `Стадия = "Новая", а не "Сделка успешна"`. Field names come from the map page's
 * dictionary (server/ui/i18n-map.ts), deal and lead stage names, quote and old invoice status
 * names from the portal's lists when the page has them (server/rules/metadata.ts); a code
 * without a name stays as written.
 *
 * Only the evaluator's own sentences are rewritten, recognised whole (one of the templates
 * below, its values as `show` writes them, then the end of the reason); rule names, values,
 * remote errors and anything else are kept as written.
 */
export interface NoteNames {
  /** The page language's words (`map.field.*`, `map.root.*`, `map.stage.inPipeline`). */
  words: MapWords;
  /** The portal's stage and status names (server/ui/pages/rules-table.ts), when known. */
  stages?: StageNames | undefined;
  /** The event's record type (`deal`, `dynamic:1038`): whose field a bare name is. */
  entityType?: string | null | undefined;
  /** The event's name, for its record type when `entityType` is not stored. */
  event?: string | undefined;
}

/** Where the text comes from: the stored reason of a rule match, its note, the event's note. */
export type NoteKind = 'reason' | 'matchNote' | 'eventNote';

/**
 * The evaluator's sentences after the field: `V` a value as `show` writes it (server/rules/
 * fields.ts), `E` an event name. Kept in step with conditions.ts and transitions.ts by the
 * unit tests, which build their reasons with the evaluator itself.
 */
const TEMPLATES: ReadonlyArray<readonly string[]> = [
  [' is ', 'V', ', not ', 'V', ' (new record)'],
  [' is ', 'V', ', not one of ', 'V'],
  [' is ', 'V', ', one of ', 'V'],
  [' is ', 'V', ', not ', 'V'],
  [
    ' is ',
    'V',
    ' but its earlier value is unknown (first sighting on ',
    'E',
    '; becomes needs a seen change)',
  ],
  [' is empty on the new record'],
  // a dry run's change taken as just made (conditions.ts, assumeChange)
  [' is ', 'V', ' (assumed just changed to it)'],
  [' is ', 'V', ' (assumed just changed)'],
  [' is ', 'V'],
  [' became ', 'V', ' (new record)'],
  [' became ', 'V', ' (was ', 'V', ')'],
  [' was already ', 'V'],
  [' earlier value is unknown (first sighting on ', 'E', '; changed needs a seen change)'],
  [' set to ', 'V', ' (new record)'],
  [' unchanged (', 'V', ')'],
  [' changed from ', 'V', ' to ', 'V'],
];
const FIELD = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*/;
const EVENT = /^[A-Z][A-Z0-9_]*/;
const LITERAL = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false)/;
/** What `show` writes at most: longer values are cut to 57 characters and `...`. */
const SHOWN_MAX = 60;
/** Stands in for a field's name while the note is translated: no phrase holds these. */
const MARK = /\uE000(\d+)\uE001/g;
const MARKS = /[\uE000\uE001]/;

interface Reason {
  end: number;
  field: string;
  fieldEnd: number;
  values: Array<[number, number]>;
}

/** The end of a JSON token at `i` (at most SHOWN_MAX long), or -1. */
function tokenEnd(s: string, i: number): number {
  const limit = Math.min(s.length, i + SHOWN_MAX);
  const c = s[i];
  if (c === '"') {
    for (let j = i + 1; j < limit; j++) {
      if (s[j] === '\\') j++;
      else if (s[j] === '"') return j + 1;
    }
    return -1;
  }
  if (c === '[' || c === '{') {
    let depth = 0;
    for (let j = i; j < limit; j++) {
      const d = s[j];
      if (d === '"') {
        const e = tokenEnd(s, j);
        if (e < 0) return -1;
        j = e - 1;
      } else if (d === '[' || d === '{') depth++;
      else if (d === ']' || d === '}') {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  const m = LITERAL.exec(s.slice(i, limit));
  return m ? i + m[0].length : -1;
}

/** The end of a value as `show` writes it at `i`: `empty`, a JSON token, or one cut short. */
function valueEnd(s: string, i: number): number {
  if (s.startsWith('empty', i)) return i + 5;
  const whole = tokenEnd(s, i);
  if (whole > 0) return whole;
  return s.length >= i + SHOWN_MAX && s.startsWith('...', i + SHOWN_MAX - 3) ? i + SHOWN_MAX : -1;
}

/** Where a reason may end: the text's end, the next reason, or the note's closing bracket. */
const endsAt = (s: string, i: number): boolean =>
  i === s.length || s.startsWith('; ', i) || (s[i] === ')' && i === s.length - 1);

/** One of the evaluator's sentences, whole, at `i`. */
function reasonAt(s: string, i: number): Reason | undefined {
  const f = FIELD.exec(s.slice(i, i + 200));
  if (!f) return undefined;
  const fieldEnd = i + f[0].length;
  outer: for (const template of TEMPLATES) {
    let j = fieldEnd;
    const values: Array<[number, number]> = [];
    for (const part of template) {
      if (part === 'V') {
        const e = valueEnd(s, j);
        if (e < 0) continue outer;
        values.push([j, e]);
        j = e;
      } else if (part === 'E') {
        const m = EVENT.exec(s.slice(j, j + 100));
        if (!m) continue outer;
        j += m[0].length;
      } else if (s.startsWith(part, j)) j += part.length;
      else continue outer;
    }
    if (endsAt(s, j)) return { end: j, field: f[0], fieldEnd, values };
  }
  return undefined;
}

/**
 * Where reasons may start. A match's reason: its start and after each "; " (the conditions
 * that held). A match's note: after "stale trigger: ". An event's note: `no rule to run (Rule:
 * reason; …)` after each rule's ": " and "stale trigger: "; any other note only after
 * "Rule: stale trigger, " (its other parts are step failures: remote text).
 */
function starts(s: string, kind: NoteKind): (i: number) => boolean {
  const after = (i: number, lead: string) =>
    i >= lead.length && s.startsWith(lead, i - lead.length);
  if (kind === 'reason') return (i) => i === 0 || after(i, '; ');
  if (kind === 'matchNote')
    return (i) => i === 'stale trigger: '.length && after(i, 'stale trigger: ');
  if (s.startsWith('no rule to run (')) return (i) => after(i, ': ') || after(i, 'stale trigger, ');
  return (i) => after(i, ': stale trigger, ');
}

/** The note in the page's language with its fields and stages named; see NoteNames. */
export function readableNote(
  note: string,
  lang: UiUser['lang'],
  ruleNames: readonly string[],
  names: NoteNames,
  kind: NoteKind = 'eventNote',
): string {
  if (!note || MARKS.test(note)) return translateNote(note, lang, ruleNames);
  const own = entityRoot(names.entityType, names.event ?? '');
  const canStart = starts(note, kind);
  const labels: string[] = [];
  /** Text put in after translation (a name, a pipeline), where the note has this mark. */
  const mark = (text: string) => `\uE000${labels.push(text) - 1}\uE001`;
  let out = '';
  let last = 0;
  for (let i = 0; i < note.length;) {
    const r = canStart(i) ? reasonAt(note, i) : undefined;
    if (!r) {
      // Past a value rather than into it, where it is whole.
      const e = note[i] === '"' ? tokenEnd(note, i) : -1;
      i = e > 0 ? e : i + 1;
      continue;
    }
    const label = fieldLabel(r.field, own, names.words);
    const codes = codeNames(r.field, own, names.words);
    const stage = stagesFor(names.stages, stageField(r.field, own)) ?? codes;
    out += note.slice(last, i);
    out += label === undefined ? r.field : mark(label);
    // A stage of another pipeline beside one of the default's: both say their pipeline, or
    // `Stage is "Won" (pipeline Wholesale), not "Won"` reads as a contradiction.
    const numbers = stage === codes;
    const pipelines =
      stage !== undefined &&
      r.values.some(([a, b]) =>
        stagesIn(note.slice(a, b), stage, numbers).some((x) => x.pipeline && !x.inDefault),
      );
    let at = r.fieldEnd;
    for (const [a, b] of r.values) {
      out +=
        note.slice(at, a) +
        (stage
          ? nameStages(note.slice(a, b), stage, names.words, mark, numbers, pipelines)
          : note.slice(a, b));
      at = b;
    }
    out += note.slice(at, r.end);
    last = i = r.end;
  }
  out += note.slice(last);
  return translateNote(out, lang, ruleNames).replace(
    MARK,
    (whole, n: string) => labels[Number(n)] ?? whole,
  );
}

/** `Stage`; another record's field: `Contact · Phone`; undefined without a dictionary name. */
function fieldLabel(field: string, own: string | undefined, words: MapWords): string | undefined {
  const parts = field.split('.');
  if (parts.length > 2) return undefined;
  const root = parts.length === 2 ? parts[0]! : undefined;
  if (root !== undefined && !RECORD_ROOTS.has(root)) return undefined;
  const name = words(`map.field.${upperFieldName(parts.at(-1)!)}`);
  if (name === undefined) return undefined;
  if (root === undefined || root === 'entity' || root === own) return name;
  const rootName = words(`map.root.${root}`);
  return rootName === undefined ? undefined : `${rootName} · ${name}`;
}

/** The codes of a field whose values are a fixed list (an activity's type) as names. */
function codeNames(
  field: string,
  own: string | undefined,
  words: MapWords,
): StageNames | undefined {
  const f = fieldOf(field, own);
  const codes = f && fixedCodeWords(f.name, f.record, words);
  if (!codes) return undefined;
  return (code) => {
    const name = codes(code);
    return name === undefined ? undefined : { name };
  };
}

/** Only a deal's or a lead's stage codes, a quote's or an old invoice's status codes, have names. */
function stageField(field: string, own: string | undefined): StageRecord | undefined {
  const f = fieldOf(field, own);
  return f && stageRecord(f.name, f.record);
}

/** A compared field's name and whose record it is (`own` for a bare or `entity.` one). */
function fieldOf(
  field: string,
  own: string | undefined,
): { name: string; record: string | undefined } | undefined {
  const parts = field.split('.');
  if (parts.length > 2) return undefined;
  const record = parts.length === 1 || parts[0] === 'entity' ? own : parts[0];
  return { name: parts.at(-1)!, record };
}

/**
 * Each whole quoted stage code of a value (or of a list) replaced by the stage's name (with
 * `numbers`, a fixed list's number codes too: an activity's type 2 is "Call"), and a
 * stage outside the default pipeline followed by its pipeline: `"Paid" (pipeline Wholesale)`.
 * (The default pipeline's stages go without, so a short note stays short: the log and the
 * deal tab clip notes.)
 */
/** Each code in a value as `show` wrote it, where it names a stage: [start, end, stage]. */
function stageCodes(
  value: string,
  stages: StageNames,
  numbers: boolean,
): Array<[number, number, StageName]> {
  const out: Array<[number, number, StageName]> = [];
  for (let i = 0; i < value.length; i++) {
    // A quoted code, or a number as a code of a fixed list (an activity's type 2 or "2").
    const bare = numbers && /\d/.test(value[i]!) && (i === 0 || '[,'.includes(value[i - 1]!));
    if (value[i] !== '"' && !bare) continue;
    const e = tokenEnd(value, i);
    if (e < 0) break; // cut short: no stage code is that long
    let code: unknown;
    try {
      code = JSON.parse(value.slice(i, e));
    } catch {
      break;
    }
    const stage =
      typeof code === 'string' || typeof code === 'number' ? stages(String(code)) : undefined;
    if (stage) out.push([i, e, stage]);
    i = e - 1;
  }
  return out;
}

const stagesIn = (value: string, stages: StageNames, numbers: boolean): StageName[] =>
  stageCodes(value, stages, numbers).map(([, , stage]) => stage);

/**
 * The stage codes of a value as their names, with the pipeline of a stage outside the
 * default one, or of every stage that has one (`pipelines`).
 */
function nameStages(
  value: string,
  stages: StageNames,
  words: MapWords,
  mark: (text: string) => string,
  numbers = false,
  pipelines = false,
): string {
  let out = '';
  let last = 0;
  for (const [i, e, stage] of stageCodes(value, stages, numbers)) {
    const quoted = JSON.stringify(stage.name);
    const text =
      stage.pipeline && (pipelines || !stage.inDefault)
        ? plain(
            fill(words('map.stage.inPipeline') ?? '{stage} ({pipeline})', {
              stage: [{ text: quoted }],
              pipeline: [{ text: stage.pipeline }],
            }),
          )
        : quoted;
    out += value.slice(last, i) + mark(text);
    last = e;
  }
  return out + value.slice(last);
}
