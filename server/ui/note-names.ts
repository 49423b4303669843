import { fill, plain, type MapWords, type StageNames } from '../rules/describe.js';
import { CONTEXT_ROOTS, entityRoot } from '../rules/context.js';
import { upperFieldName } from '../rules/fields.js';
import type { UiUser } from './session.js';
import { escapeRe, translateNote } from './i18n-messages.js';

/**
 * An event's notes and its rules' reasons name what the rules compared as the rules wrote it:
 * `STAGE_ID is "NEW", not "WON"` (server/rules/conditions.ts, transitions.ts). A CRM manager
 * reads the field's name and the stage's name instead: `Stage is "New", not "Won"`, in
 * Russian `Стадия = "Новая", а не "Сделка успешна"`. Field names come from the map page's
 * dictionary (server/ui/i18n-map.ts), deal stage names from the portal's stage list when the
 * page has it (server/rules/metadata.ts); a code without a name stays as written.
 */
export interface NoteNames {
  /** The page language's words (`map.field.*`, `map.root.*`, `map.stage.inPipeline`). */
  words: MapWords;
  /** The portal's deal stages, when known. */
  stages?: StageNames | undefined;
  /** The event's record type (`deal`, `dynamic:1038`): whose field a bare name is. */
  entityType?: string | null | undefined;
  /** The event's name, for its record type when `entityType` is not stored. */
  event?: string | undefined;
}

/**
 * A field at the start of a reason (the note's start, after "Rule: ", "; " or "("), followed
 * by one of the verbs the reasons use: `STAGE_ID`, `deal.STAGE_ID`, `stageId`.
 */
const FIELD =
  /(^|: |; |\()((?:[A-Za-z][A-Za-z0-9]*\.)?[A-Za-z][A-Za-z0-9_]*)(?= (?:is |became |was already |earlier value is unknown|unchanged \(|changed from |set to ))/g;
/** A JSON string, as the reasons show values (`show` in server/rules/fields.ts). */
const QUOTED = /"((?:[^"\\]|\\.)*)"/g;
/** Stands in for a field's name while the note is translated: no phrase holds these. */
const MARK = /\uE000(\d+)\uE001/g;
const ROOTS: ReadonlySet<string> = new Set(CONTEXT_ROOTS);

/** The note in the page's language with its fields and stages named; see NoteNames. */
export function readableNote(
  note: string,
  lang: UiUser['lang'],
  ruleNames: readonly string[],
  names: NoteNames,
): string {
  if (!note) return note;
  const own = entityRoot(names.entityType, names.event ?? '');
  // Rule names are data, kept as written even where one reads like a reason.
  const ruleSpans = spansOf(note, ruleNames);
  const labels: string[] = [];
  let out = '';
  let last = 0;
  for (const m of note.matchAll(FIELD)) {
    const start = m.index + m[1]!.length;
    if (start < last) continue; // inside a value of the reason before
    if (ruleSpans.some(([a, b]) => start >= a && start < b)) continue;
    const field = m[2]!;
    const label = fieldLabel(field, own, names.words);
    // The reason runs to the next one ("; ") or to the end of the note.
    const end = note.indexOf('; ', start);
    const stop = end < 0 ? note.length : end;
    if (label === undefined && !isDealStage(field, own)) continue;
    out += note.slice(last, start);
    if (label === undefined) out += field;
    else {
      out += `\uE000${labels.length}\uE001`;
      labels.push(label);
    }
    const rest = note.slice(start + field.length, stop);
    out += isDealStage(field, own) ? nameStages(rest, names) : rest;
    last = stop;
  }
  out += note.slice(last);
  return translateNote(out, lang, ruleNames).replace(MARK, (_, i: string) => labels[Number(i)]!);
}

/** Where rule names open a "Rule: reason" part (as translateNote finds them). */
function spansOf(note: string, ruleNames: readonly string[]): Array<[number, number]> {
  const names = [...new Set(ruleNames)].filter(Boolean).sort((a, b) => b.length - a.length);
  if (names.length === 0) return [];
  const re = new RegExp(`(?:^|\\(|; )(${names.map(escapeRe).join('|')})(?=: )`, 'g');
  return [...note.matchAll(re)].map((m) => {
    const end = m.index + m[0].length;
    return [end - m[1]!.length, end];
  });
}

/** `Stage`; another record's field: `Contact · Phone`; undefined without a dictionary name. */
function fieldLabel(field: string, own: string | undefined, words: MapWords): string | undefined {
  const dot = field.indexOf('.');
  const root = dot < 0 ? undefined : field.slice(0, dot);
  if (root !== undefined && !ROOTS.has(root)) return undefined;
  const name = words(`map.field.${upperFieldName(field.slice(dot + 1))}`);
  if (name === undefined) return undefined;
  if (root === undefined || root === 'entity' || root === own) return name;
  const rootName = words(`map.root.${root}`);
  return rootName === undefined ? undefined : `${rootName} · ${name}`;
}

/** Only a deal's stage codes are names in the portal's stage list. */
function isDealStage(field: string, own: string | undefined): boolean {
  const dot = field.indexOf('.');
  const root = dot < 0 ? own : field.slice(0, dot) === 'entity' ? own : field.slice(0, dot);
  return root === 'deal' && upperFieldName(field.slice(dot + 1)) === 'STAGE_ID';
}

/** Each quoted stage code of a reason replaced by the stage's name, quoted alike. */
function nameStages(reason: string, names: NoteNames): string {
  const stages = names.stages;
  if (!stages) return reason;
  return reason.replace(QUOTED, (whole, raw: string) => {
    let code: unknown;
    try {
      code = JSON.parse(`"${raw}"`);
    } catch {
      return whole;
    }
    const stage = typeof code === 'string' ? stages(code) : undefined;
    if (!stage) return whole;
    const text = stage.pipeline
      ? plain(
          fill(names.words('map.stage.inPipeline') ?? '{stage} ({pipeline})', {
            stage: [{ text: stage.name }],
            pipeline: [{ text: stage.pipeline }],
          }),
        )
      : stage.name;
    return JSON.stringify(text);
  });
}
