import { eventTypo, isBindableEvent } from '../config/bitrix-events.js';
import { ITEM_RECORD_TYPES } from '../lib/entity-types.js';
import { closest, upperFieldName } from './fields.js';
import type { EventMap, Rule } from './model.js';
import { readMarkup } from '../lib/telegram-markup.js';
import { CONTEXT_ROOTS, entityRoot, entityTypeOfEvent, RELATED_ROOTS } from './context.js';
import {
  parsePlaceholder,
  placeholders,
  unclosedTemplates,
  withoutPlaceholders,
} from './templates.js';

export interface CheckOptions {
  /** Events the portal (or the default install) binds; rules on other events never fire. */
  boundEvents?: readonly string[];
  /** `EVENT_SETTLE_MS`: every event is first read this long after its receipt. */
  settleMs?: number;
  /** `STEP_TIMEOUT_MAX_SECONDS` in ms: no step waits longer for its answer. */
  stepTimeoutMaxMs?: number;
  /**
   * Which channels this server has set up (TELEGRAM_BOT_TOKEN, SMTP_URL, SMS_PROVIDER): a
   * step of another one fails every time its rule runs.
   */
  channels?: { telegram: boolean; email: boolean; sms: boolean };
  /**
   * Whether the portal has an alert chat of its own, where a `telegram` step without a chat
   * posts (undefined: not known, as for the default map).
   */
  portalChat?: boolean;
}

export interface MapWarning {
  code:
    | 'same-field-write'
    | 'self-trigger'
    | 'trigger-cycle'
    | 'unbound-event'
    | 'first-change-unseen'
    | 'sla-too-short'
    | 'saved-before-check'
    | 'unknown-field'
    | 'value-type'
    | 'step-timeout-cut'
    | 'telegram-markup'
    | 'channel-not-set-up'
    | 'unclosed-template'
    | 'unknown-root';
  /** The rules concerned, by name. */
  rules: string[];
  message: string;
}

const CRM_ENTITY: Record<string, string> = {
  deal: 'DEAL',
  lead: 'LEAD',
  contact: 'CONTACT',
  company: 'COMPANY',
  quote: 'QUOTE',
  invoice: 'INVOICE',
  activity: 'ACTIVITY',
};

/**
 * The Bitrix24 events a REST call can cause on the same portal (what the app would then
 * receive): `crm.deal.update` → ONCRMDEALUPDATE, `crm.item.update` with entityTypeId 2 →
 * ONCRMDEALUPDATE, `crm.invoice.update` → ONCRMINVOICESETSTATUS and ONCRMINVOICEUPDATE,
 * `crm.timeline.comment.add` → ONCRMTIMELINECOMMENTADD, …
 */
export function eventsTriggeredBy(method: string, params: Record<string, unknown> = {}): string[] {
  const m = method.toLowerCase().split('.');
  const verb = (m[m.length - 1] ?? '').toUpperCase();
  if (!['ADD', 'UPDATE', 'DELETE'].includes(verb)) return [];
  // An old invoice's add and update also send ONCRMINVOICESETSTATUS, and before their own
  // event: CCrmInvoice::Add (behind Update too) calls SetStatus whenever a status is given, and
  // REST add requires one while update carries the current one over (CORE crm classes/general/
  // crm_invoice.php `CCrmInvoice::Add`; restservice_invoice.php `CCrmInvoiceRestService::add`,
  // `update` merging `getInvoiceDataByID`).
  if (m[0] === 'crm' && m[1] === 'invoice' && m.length === 3 && verb !== 'DELETE')
    return ['ONCRMINVOICESETSTATUS', `ONCRMINVOICE${verb}`];
  if (m[0] === 'crm' && m.length === 3 && m[1] && CRM_ENTITY[m[1]])
    return [`ONCRM${CRM_ENTITY[m[1]]}${verb}`];
  if (m[0] === 'crm' && m[1] === 'item' && m.length === 3) {
    const id = String(params.entityTypeId ?? params.ENTITY_TYPE_ID ?? '');
    const named = ITEM_RECORD_TYPES[id]?.toUpperCase();
    if (named) return [`ONCRM${named}${verb}`];
    // A smart process's item sends the general event and its type's own one, both for one
    // change (DOCS: api-reference/crm/universal/events/index.md).
    return [
      `ONCRMDYNAMICITEM${verb}`,
      ...(/^\d{1,10}$/.test(id) ? [`ONCRMDYNAMICITEM${verb}_${id}`] : []),
    ];
  }
  if (method.toLowerCase() === 'crm.timeline.comment.add') return ['ONCRMTIMELINECOMMENTADD'];
  if (m[0] === 'tasks' && m[1] === 'task' && m.length === 3) return [`ONTASK${verb}`];
  return [];
}

/** Fields a rule's `*.update` steps write, by the event family they land in. */
function writes(rule: Rule): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const a of rule.actions) {
    if (a.type !== 'bitrix') continue;
    for (const ev of eventsTriggeredBy(a.method, a.params)) {
      if (!ev.endsWith('UPDATE')) continue;
      const fields = a.params?.fields ?? a.params?.FIELDS;
      if (typeof fields !== 'object' || fields === null) continue;
      const set = out.get(ev) ?? new Set<string>();
      for (const k of Object.keys(fields)) set.add(upperFieldName(k));
      out.set(ev, set);
    }
  }
  return out;
}

/** The ADD event of an UPDATE event's record type: ONCRMDEALUPDATE → ONCRMDEALADD. */
function addEventOf(event: string): string | undefined {
  if (!entityTypeOfEvent(event) || !/UPDATE(_\d+)?$/.test(event)) return undefined;
  return event.replace(/UPDATE(_\d+)?$/, 'ADD$1');
}

/**
 * A change (`changed`, `becomes`) is told against the record's values seen last, and a new
 * record is first seen on its ADD event. With no ADD event of the record type subscribed,
 * every record's first change after its creation is a first sighting, and those conditions
 * skip it: said at save time, not found in the log a week later.
 */
function firstChangeWarnings(rules: readonly Rule[], boundEvents: readonly string[]): MapWarning[] {
  const bound = new Set(boundEvents.map((e) => e.toUpperCase()));
  // A smart process's ADD is its type's own (ONCRMDYNAMICITEMADD_1038) or the general one,
  // which comes for every type's records; another type's does not see this type's records,
  // though all share the family `dynamic`.
  const seen = (add: string) => bound.has(add) || bound.has(add.replace(/_\d+$/, ''));
  const out: MapWarning[] = [];
  for (const r of rules) {
    const fields = [
      ...new Set(
        (r.when ?? []).filter((c) => 'changed' in c || 'becomes' in c).map((c) => c.field),
      ),
    ];
    if (fields.length === 0) continue;
    const warned = new Set<string>();
    for (const e of r.on) {
      const add = bound.has(e) ? addEventOf(e) : undefined;
      if (!add || seen(add) || warned.has(add)) continue;
      warned.add(add);
      out.push({
        code: 'first-change-unseen',
        rules: [r.name],
        message: `rule "${r.name}": the first change of a new record (${e}) is skipped by its conditions on changes of ${fields.join(', ')}, because the portal is not subscribed to ${add} (Subscriptions), where a record is first seen; subscribe to it`,
      });
    }
  }
  return out;
}

const listens = (rule: Rule, event: string): boolean =>
  rule.on.some((e) => e === event || e.startsWith(`${event}_`));

/**
 * Warnings about a valid map: two rules on one trigger writing the same field; a rule whose
 * own action can trigger its event again (or a cycle through several rules); rules on events
 * that are not bound; an SLA no event can meet, being within the settling time. Disabled rules
 * are left out, except from the checks of a step's own text (markup, braces, placeholders).
 */
export function checkMap(map: EventMap, opts: CheckOptions = {}): MapWarning[] {
  const warnings: MapWarning[] = [];
  const rules = map.rules.filter((r) => r.enabled !== false);

  if (opts.boundEvents) {
    const bound = new Set(opts.boundEvents.map((e) => e.toUpperCase()));
    for (const r of rules) {
      const missing = r.on.filter((e) => !bound.has(e));
      if (missing.length > 0) {
        // A misspelt name (ONCRMDEALUPDTE) is never bound: say which event it is close to.
        const guesses = missing.flatMap((e) => {
          const g = isBindableEvent(e) ? undefined : eventTypo(e);
          return g ? [`${g} (for ${e})`] : [];
        });
        warnings.push({
          code: 'unbound-event',
          rules: [r.name],
          message:
            // In the words of the app's Subscriptions page (where the builder says "not
            // subscribed"), which is where it is put right.
            `rule "${r.name}" listens to ${missing.join(', ')}, ${missing.length > 1 ? 'which are not subscribed (Subscriptions); it will not fire until the portal is subscribed to them' : 'which is not subscribed (Subscriptions); it will not fire until the portal is subscribed to it'}` +
            (guesses.length ? `; did you mean ${guesses.join(', ')}?` : ''),
        });
      }
    }
  }

  if (opts.boundEvents) warnings.push(...firstChangeWarnings(rules, opts.boundEvents));

  if (opts.settleMs !== undefined) {
    for (const r of rules) {
      if (r.slaSeconds === undefined || r.slaSeconds * 1000 > opts.settleMs) continue;
      warnings.push({
        code: 'sla-too-short',
        rules: [r.name],
        message: `rule "${r.name}" has an SLA of ${r.slaSeconds} s, but an event is first read ${opts.settleMs / 1000} s after it arrives (EVENT_SETTLE_MS); every event will be late`,
      });
    }
  }

  if (opts.stepTimeoutMaxMs !== undefined) {
    const max = opts.stepTimeoutMaxMs;
    for (const r of rules) {
      r.actions.forEach((a, i) => {
        if (a.type !== 'http' || a.timeoutMs === undefined || a.timeoutMs <= max) return;
        warnings.push({
          code: 'step-timeout-cut',
          rules: [r.name],
          message: `rule "${r.name}", step ${i + 1} waits up to ${a.timeoutMs / 1000} s for an answer, but this server ends a step after ${max / 1000} s (STEP_TIMEOUT_MAX_SECONDS)`,
        });
      });
    }
  }

  warnings.push(...channelWarnings(rules, opts));

  // What is wrong in a step's own text is said of a disabled rule as well: it is often a
  // draft, switched on once it reads right (an admin's walk through the builder saved one
  // with an unclosed {{ and heard nothing).
  // A Telegram text whose markup the Bot API refuses fails every message of the step; values
  // are escaped for their parse mode when rendered, so the text around them is what counts.
  for (const r of map.rules) {
    r.actions.forEach((a, i) => {
      if (a.type !== 'telegram' || !a.parseMode || typeof a.text !== 'string') return;
      const read = readMarkup(withoutPlaceholders(a.text, 'x'), a.parseMode);
      if (read.ok) return;
      warnings.push({
        code: 'telegram-markup',
        rules: [r.name],
        message: `rule "${r.name}", step ${i + 1}: Telegram will refuse its text as ${a.parseMode} (${read.description.replace(/^Bad Request: /, '')}); every message of this step would fail`,
      });
    });
  }

  // `{{deal.TITLE` (the closing braces forgotten) is no placeholder: the step would send it
  // as written, braces and all, on every event.
  for (const r of map.rules) {
    r.actions.forEach((a, i) => {
      const { type: _type, name: _name, ...values } = a as unknown as Record<string, unknown>;
      for (const text of unclosedTemplates(values)) {
        warnings.push({
          code: 'unclosed-template',
          rules: [r.name],
          message: `rule "${r.name}", step ${i + 1}: "${text}" has no closing braces, so it is sent as written; close it as in {{deal.TITLE}}`,
        });
      }
      warnings.push(...unknownRoots(r, i, values));
    });
  }

  warnings.push(...sameFieldWrites(rules));
  warnings.push(...triggerLoops(rules));
  return warnings;
}

/**
 * Pairs of rules writing the same field listed at most; past it one line says there are more.
 * The only warning that grows with the square of the rules: a map of 500 rules on one event,
 * each writing the same field, made 124,750 pairs and a rules page of 43 MB, for every reader.
 */
export const SAME_FIELD_PAIRS_LISTED = 100;

/**
 * Two rules on one trigger writing the same field of the same record type. Pairs are found
 * through an index of (trigger event, record type, field), so the work follows the pairs
 * found, not every pair of rules; past SAME_FIELD_PAIRS_LISTED pairs the search stops.
 */
function sameFieldWrites(rules: readonly Rule[]): MapWarning[] {
  const written = rules.map(writes);
  const byKey = new Map<string, number[]>();
  rules.forEach((r, i) => {
    for (const e of new Set(r.on)) {
      for (const [target, fields] of written[i]!) {
        for (const f of fields) {
          const key = `${e}\u0000${target}\u0000${f}`;
          const list = byKey.get(key);
          if (list) list.push(i);
          else byKey.set(key, [i]);
        }
      }
    }
  });
  const pairs = new Set<number>();
  let more = false;
  search: for (const list of byKey.values()) {
    for (let x = 0; x < list.length; x++) {
      for (let y = x + 1; y < list.length; y++) {
        const pair = list[x]! * rules.length + list[y]!;
        if (pairs.size === SAME_FIELD_PAIRS_LISTED && !pairs.has(pair)) {
          more = true;
          break search;
        }
        pairs.add(pair);
      }
    }
  }
  const out: MapWarning[] = [];
  for (const p of [...pairs].sort((a, b) => a - b)) {
    const i = Math.floor(p / rules.length);
    const j = p % rules.length;
    const a = rules[i]!;
    const b = rules[j]!;
    const shared = a.on.filter((e) => b.on.includes(e));
    for (const [target, fa] of written[i]!) {
      const fb = written[j]!.get(target);
      const both = fb ? [...fa].filter((f) => fb.has(f)) : [];
      if (both.length === 0) continue;
      out.push({
        code: 'same-field-write',
        rules: [a.name, b.name],
        message: `rules "${a.name}" and "${b.name}" both run on ${shared.join(', ')} and both write ${both.join(', ')} (${target.replace(/^ONCRM|UPDATE$/g, '').toLowerCase()}); the later write wins`,
      });
    }
  }
  if (more) {
    out.push({
      code: 'same-field-write',
      rules: [],
      message: `more pairs of rules on one trigger write the same field than the ${SAME_FIELD_PAIRS_LISTED} listed with their rules; the rest are listed once those are put right`,
    });
  }
  return out;
}

/**
 * A rule whose own step can trigger its event again, and rules that trigger each other in a
 * cycle: the strongly connected components of the graph rule → event it causes → rule that
 * listens, in one pass over its edges (the rule × rule walk it replaces was cubic: 12 s of
 * the main thread for 500 rules on one event, on every view of the rules page).
 */
function triggerLoops(rules: readonly Rule[]): MapWarning[] {
  const out: MapWarning[] = [];
  const causes = rules.map((r) => [
    ...new Set(
      r.actions.flatMap((a) => (a.type === 'bitrix' ? eventsTriggeredBy(a.method, a.params) : [])),
    ),
  ]);
  rules.forEach((r, i) => {
    if (!causes[i]!.some((ev) => listens(r, ev))) return;
    const via = r.actions.find(
      (a) =>
        a.type === 'bitrix' && eventsTriggeredBy(a.method, a.params).some((ev) => listens(r, ev)),
    );
    out.push({
      code: 'self-trigger',
      rules: [r.name],
      message: `rule "${r.name}" listens to ${r.on.join(', ')} and its step ${via?.type === 'bitrix' ? via.method : ''} can trigger that event again; the loop guard skips the app's own writes, but make sure the conditions cannot re-match`,
    });
  });
  // Nodes: rules 0..n-1, then one per event caused. A rule listening to ONCRMDYNAMICITEMADD_7
  // hears ONCRMDYNAMICITEMADD as well (`listens`): it is reached from both names.
  const eventNode = new Map<string, number>();
  for (const evs of causes)
    for (const ev of evs) if (!eventNode.has(ev)) eventNode.set(ev, rules.length + eventNode.size);
  const next: number[][] = Array.from({ length: rules.length + eventNode.size }, () => []);
  causes.forEach((evs, i) => evs.forEach((ev) => next[i]!.push(eventNode.get(ev)!)));
  rules.forEach((r, i) => {
    for (const e of new Set(r.on)) {
      const exact = eventNode.get(e);
      if (exact !== undefined) next[exact]!.push(i);
      // And every name it extends past an underscore (`listens`).
      for (let at = e.indexOf('_'); at >= 0; at = e.indexOf('_', at + 1)) {
        const general = at > 0 ? eventNode.get(e.slice(0, at)) : undefined;
        if (general !== undefined) next[general]!.push(i);
      }
    }
  });
  const cycles = stronglyConnected(next)
    .map((component) => component.filter((n) => n < rules.length).sort((a, b) => a - b))
    .filter((members) => members.length > 1)
    .sort((a, b) => a[0]! - b[0]!);
  for (const members of cycles) {
    const names = members.map((m) => rules[m]!.name);
    out.push({
      code: 'trigger-cycle',
      rules: names,
      message: `rules ${names.map((n) => `"${n}"`).join(', ')} can trigger each other in a cycle through their bitrix steps`,
    });
  }
  return out;
}

/** Tarjan's strongly connected components, without recursion (a map's graph can be deep). */
function stronglyConnected(next: readonly number[][]): number[][] {
  const n = next.length;
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const onStack = new Uint8Array(n);
  const stack: number[] = [];
  const out: number[][] = [];
  let counter = 0;
  for (let root = 0; root < n; root++) {
    if (index[root] !== -1) continue;
    const frames: Array<[node: number, edge: number]> = [[root, 0]];
    index[root] = low[root] = counter++;
    stack.push(root);
    onStack[root] = 1;
    while (frames.length) {
      const frame = frames[frames.length - 1]!;
      const [v, e] = frame;
      const edges = next[v]!;
      if (e < edges.length) {
        frame[1] = e + 1;
        const w = edges[e]!;
        if (index[w] === -1) {
          index[w] = low[w] = counter++;
          stack.push(w);
          onStack[w] = 1;
          frames.push([w, 0]);
        } else if (onStack[w]) low[v] = Math.min(low[v]!, index[w]!);
        continue;
      }
      frames.pop();
      const parent = frames[frames.length - 1];
      if (parent) low[parent[0]] = Math.min(low[parent[0]]!, low[v]!);
      if (low[v] !== index[v]) continue;
      const component: number[] = [];
      let w: number;
      do {
        w = stack.pop()!;
        onStack[w] = 0;
        component.push(w);
      } while (w !== v);
      out.push(component);
    }
  }
  return out;
}

/** What each channel needs on the server, in the words of the operator's configuration. */
const CHANNEL_SETUP = {
  telegram: 'Telegram is not set up on this server (TELEGRAM_BOT_TOKEN)',
  email: 'e-mail is not set up on this server (SMTP_URL)',
  sms: 'SMS is not set up on this server (SMS_PROVIDER)',
} as const;

/**
 * Steps that cannot be sent as things stand: a channel the server has not set up, or a
 * Telegram step without a chat on a portal without an alert chat. The rule saves, and then
 * every event it matches failed at that step with a message naming a server variable the
 * portal's admin had never seen.
 */
function channelWarnings(rules: readonly Rule[], opts: CheckOptions): MapWarning[] {
  const out: MapWarning[] = [];
  for (const r of rules) {
    r.actions.forEach((a, i) => {
      const at = `rule "${r.name}", step ${i + 1}`;
      const type = a.type;
      if (type !== 'telegram' && type !== 'email' && type !== 'sms') return;
      if (opts.channels && !opts.channels[type]) {
        out.push({
          code: 'channel-not-set-up',
          rules: [r.name],
          message: `${at}: ${CHANNEL_SETUP[type]}, so this step fails every time the rule runs; ask the app's operator to set it up, or remove the step`,
        });
        return;
      }
      if (type === 'telegram' && a.chatId === undefined && opts.portalChat === false) {
        out.push({
          code: 'channel-not-set-up',
          rules: [r.name],
          message: `${at}: the step names no chat, and this portal has no alert chat of its own (Alerts page), so this step fails every time the rule runs; name a chat in the step, or set the portal's alert chat`,
        });
      }
    });
  }
  return out;
}

/** What a template may start with (server/rules/context.ts). */
const TEMPLATE_ROOTS: readonly string[] = CONTEXT_ROOTS;
/** The roots that name a record (the others are the event, the steps, the portal). */
const RECORD_ROOTS: readonly string[] = CONTEXT_ROOTS.filter(
  (r) => !['event', 'entity', 'steps', 'portal'].includes(r),
);

/** The record root of each event, or undefined when one of them has none we know. */
function recordsOfEvents(events: readonly string[]): string[] | undefined {
  const kinds = events.map((e) => entityRoot(null, e));
  return kinds.every((k): k is string => k !== undefined) ? kinds : undefined;
}

/**
 * Whether an event about a `kind` record brings `root`: its own record, and a contact and a
 * company read by the record's CONTACT_ID / COMPANY_ID (an old invoice's UF_CONTACT_ID /
 * UF_COMPANY_ID; processing/read-entities.ts `loadRelated`), which activities and tasks do
 * not have.
 */
function bringsRecord(kind: string, root: string): boolean {
  if (root === kind) return true;
  return (
    (RELATED_ROOTS as readonly string[]).includes(root) && kind !== 'activity' && kind !== 'task'
  );
}

/**
 * Placeholders of a step that start with a name no rule has (`{{client.NAME}}`,
 * `{{Deal.TITLE}}`): the step then fails on every event ("client is not available"), and
 * the save said nothing (an admin's walk through the builder). Optional ones too: they
 * would always be empty.
 */
function unknownRoots(r: Rule, i: number, values: Record<string, unknown>): MapWarning[] {
  const out: MapWarning[] = [];
  const seen = new Set<string>();
  for (const raw of placeholders(values)) {
    let root: string | undefined;
    try {
      root = parsePlaceholder(raw).path.segments[0];
    } catch {
      continue; // validation says what is wrong with it
    }
    if (!root || seen.has(root)) continue;
    if (TEMPLATE_ROOTS.includes(root)) {
      const kinds = recordsOfEvents(r.on);
      if (kinds && RECORD_ROOTS.includes(root) && !kinds.some((k) => bringsRecord(k, root))) {
        seen.add(root);
        out.push({
          code: 'unknown-root',
          rules: [r.name],
          message:
            `rule "${r.name}", step ${i + 1}: {{${raw.trim()}}} reads "${root}": ` +
            `this rule's events (${r.on.join(', ')}) bring no ${root}, so the step fails every time`,
        });
      }
      continue;
    }
    seen.add(root);
    const guess = closest(root, TEMPLATE_ROOTS);
    out.push({
      code: 'unknown-root',
      rules: [r.name],
      message:
        `rule "${r.name}", step ${i + 1}: {{${raw.trim()}}} reads "${root}", a value no rule has` +
        (guess ? `; did you mean "${guess}"?` : ''),
    });
  }
  return out;
}
