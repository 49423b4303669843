/*
 * The rule builder (server/ui/pages/rule-builder-page.ts): a form for one rule of the event
 * map, kept in sync both ways with the rule's JSON. Field, stage, list and user pickers are
 * filled from the portal's own metadata (/ui/rules/builder/metadata); the template picker
 * inserts `{{deal.TITLE}}`-style paths and the answers of earlier named steps. Every word
 * shown comes from the page (data.strings), in the user's language.
 */
import { createDom } from './dom.js';
import { flatten, isObj, rowProblems, unflatten } from './kv.js';

const data = JSON.parse(document.getElementById('builder-data').textContent);
const S = data.strings;
const admin = data.admin === true;
const root = document.getElementById('builder');

let rule = data.rule;
let original = data.original;
/** null while loading, false when it failed, else the portal's metadata. */
let meta = null;
/**
 * The templatable field the admin was last in (its id, which a redraw keeps), per step: the
 * picker inserts there.
 */
const lastField = new Map();
/** Key/value editors' rows (empty rows included), by `step:key`, while they match the rule. */
const kvRows = new Map();
/**
 * Steps from `at` on moved by `by` (a step removed: -1, put back: +1): their rows move with
 * them, so rows being typed in other steps (empty, or refused) are not lost.
 */
function shiftKvRows(at, by) {
  const moved = [...kvRows].map(([k, rows]) => {
    const [step, key] = [Number(k.slice(0, k.indexOf(':'))), k.slice(k.indexOf(':') + 1)];
    if (step === at && by < 0) return null;
    return [step >= at ? `${step + by}:${key}` : k, rows];
  });
  kvRows.clear();
  for (const m of moved) if (m) kvRows.set(m[0], m[1]);
}
/** Steps `i` and `j` swapped places: their rows go with them. */
function swapKvRows(i, j) {
  const moved = [...kvRows].map(([k, rows]) => {
    const step = Number(k.slice(0, k.indexOf(':')));
    const rest = k.slice(k.indexOf(':'));
    return [step === i ? `${j}${rest}` : step === j ? `${i}${rest}` : k, rows];
  });
  kvRows.clear();
  for (const [k, rows] of moved) kvRows.set(k, rows);
}
/** What the "another event" box holds, and why it was refused (kept across redraws). */
let otherText = '';
let otherError = '';
/**
 * The step or condition removed last, which "Undo" puts back in its place (the same object,
 * so a saved step keeps what it was saved as): `{where: 'when' | 'actions', index, item,
 * text}`. Offered until the next removal, a save or an edit of the JSON.
 */
let undo = null;
/**
 * The last save's refusal while it is shown: `json` as the server answered (`errors` kept in
 * the form's order), `ended` for a session that ended, `sent` the rule as it was sent. A
 * redraw puts each error's note back beside its field; moving, removing or putting back a
 * step or condition carries its errors along; an edited field's error goes (fieldEdited).
 */
let refusal = null;
/** Whether the admin typed an event into "Try it" (then it no longer follows the trigger). */
let tryEventTyped = false;

const OPS = ['equals', 'in', 'changed', 'becomes'];
/** CCrmActivityType (crm classes/general/crm_activity.php): TYPE_ID of an activity. */
const ACTIVITY_TYPES = [
  ['1', 'meeting'],
  ['2', 'call'],
  ['3', 'task'],
  ['4', 'email'],
  ['5', 'calendar'],
  ['6', 'app'],
];
const TYPES = ['http', 'telegram', 'email', 'sms', 'bitrix', 'comment'];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
/** Where a step keeps what it held as its other types (`switchType`); never serialised. */
const STASH = Symbol('earlier types');
/**
 * What a step was saved as (its name, or `#n` when unnamed): sent with a save, so a step
 * renamed in the form keeps the credentials stored for it. Never serialised.
 */
const ORIGIN = Symbol('saved as');
/**
 * A saved step's headers: what each is named now → what it was saved as (a Map). Sent with a
 * save, so a header renamed in the form keeps the secret stored for it. Never serialised.
 */
const HEADERS_FROM = Symbol('headers saved as');
/** Marks each step of a rule as loaded or saved with what it (and each header) was saved as. */
function markOrigins(r) {
  (Array.isArray(r.actions) ? r.actions : []).forEach((a, i) => {
    if (!isObj(a)) return;
    Object.defineProperty(a, ORIGIN, { value: a.name ?? `#${i}` });
    const names = isObj(a.headers) ? Object.keys(a.headers) : [];
    a[HEADERS_FROM] = new Map(names.map((n) => [n, n]));
  });
  return r;
}
const steps = () => (Array.isArray(rule.actions) ? rule.actions : []);
const origins = () => JSON.stringify(steps().map((a) => a?.[ORIGIN] ?? null));
/** Per step, its renamed headers as `{now: savedAs}` (null when none were). */
const headerOrigins = () =>
  JSON.stringify(
    steps().map((a) => {
      const renamed = [...(a?.[HEADERS_FROM] ?? [])].filter(([now, from]) => now !== from);
      return renamed.length ? Object.fromEntries(renamed) : null;
    }),
  );
const NEW_STEP = {
  http: () => ({ type: 'http', method: 'POST', url: '' }),
  telegram: () => ({ type: 'telegram', text: '' }),
  email: () => ({ type: 'email', to: '', subject: '', text: '' }),
  sms: () => ({ type: 'sms', to: '', text: '' }),
  bitrix: () => ({ type: 'bitrix', method: '' }),
  comment: () => {
    const on = commentTargets()[0];
    return {
      type: 'bitrix',
      method: COMMENT_METHOD,
      params: {
        fields: { ENTITY_TYPE: on ? on.type : '', ENTITY_ID: on ? on.id : '', COMMENT: '' },
      },
    };
  },
};

// ---- the timeline comment: a `bitrix` step the form shows as a step of its own ----------

const COMMENT_METHOD = 'crm.timeline.comment.add';
/** What a comment step's `fields` may hold for the form to show it (the rest: REST call). */
const COMMENT_FIELDS = ['ENTITY_TYPE', 'ENTITY_ID', 'COMMENT'];
const STEP_KEYS = ['type', 'method', 'params', 'name', 'continueOnError'];
/**
 * A `crm.timeline.comment.add` step of only a record and a text: the form shows it as a
 * timeline comment (`comment`); any other step keeps its own type. The JSON is the same
 * `bitrix` step either way (DOCS api-reference/crm/timeline/comments/
 * crm-timeline-comment-add.md: `fields` with ENTITY_ID, ENTITY_TYPE and COMMENT).
 */
function isCommentStep(step) {
  if (!isObj(step) || step.type !== 'bitrix') return false;
  // The method's name in any case, as the rules page reads it (describe.ts commentOn).
  if (String(step.method).toLowerCase() !== COMMENT_METHOD) return false;
  if (Object.keys(step).some((k) => !STEP_KEYS.includes(k))) return false;
  const p = step.params;
  if (!isObj(p) || Object.keys(p).join() !== 'fields' || !isObj(p.fields)) return false;
  return Object.entries(p.fields).every(
    ([k, v]) => COMMENT_FIELDS.includes(k) && typeof v === 'string',
  );
}
/** A comment step's text (undefined for any other step). */
const commentText = (step) => (isCommentStep(step) ? step.params.fields.COMMENT : undefined);
/** The type a step is shown as: its own, or `comment`. */
const kindOf = (step) => (isCommentStep(step) ? 'comment' : step?.type);
/**
 * Whose timeline a comment can go to, for the trigger's record: the record itself, and for a
 * deal, lead, quote or old invoice the contact and company read with it (processing/
 * read-entities.ts `loadRelated`). `type` is the CRM owner type's name as the method takes
 * it (CCrmOwnerType::ResolveID: `dynamic_128` a smart process's, `smart_invoice` an invoice's).
 */
function commentTargets() {
  const root = entityRoot();
  const out = [];
  // A deleted record has no timeline to write to: every run would fail (found in review).
  if (/DELETE(_\d+)?$/.test(String((rule.on || [])[0] || '').toUpperCase())) return out;
  if (['deal', 'lead', 'contact', 'company', 'quote'].includes(root))
    out.push({ root, type: root, id: `{{${root}.ID}}`, own: true });
  if (root === 'item' && itemType() !== undefined) {
    const invoice = itemType() === 31;
    const type = invoice ? 'smart_invoice' : `dynamic_${itemType()}`;
    out.push({ root: invoice ? 'invoice' : root, type, id: '{{item.id}}', own: true });
  }
  if (['deal', 'lead', 'quote', 'invoice'].includes(root)) {
    out.push({ root: 'contact', type: 'contact', id: '{{contact.ID}}' });
    out.push({ root: 'company', type: 'company', id: '{{company.ID}}' });
  }
  return out;
}
/** The comment step's fields: whose timeline (a list) and the text. */
function commentFields(step, i) {
  const fields = step.params.fields;
  const targets = commentTargets();
  const current = targets.findIndex(
    (t) => t.type === fields.ENTITY_TYPE && t.id === fields.ENTITY_ID,
  );
  // Words of the page (not data, as `opt` marks its options): a translator may translate them.
  const choices = targets.map((t, n) =>
    h('option', {
      value: String(n),
      text: `${S[`root.${t.root}`] || t.root} ${t.own ? S.commentOwn : S.commentLinked}`,
      selected: n === current,
    }),
  );
  // A record given otherwise (in the JSON, or for another trigger) stays as it is, and
  // picking it again after another puts it back.
  const typed = { type: fields.ENTITY_TYPE, id: fields.ENTITY_ID };
  if (current < 0) {
    const text = S.commentAsTyped
      .replace('{type}', typed.type || '—')
      .replace('{id}', typed.id || '—');
    choices.unshift(h('option', { value: '', text, selected: true }));
  }
  const on = h(
    'select',
    {
      id: `step-${i}-comment-on`,
      onchange: () => {
        const t = on.value === '' ? typed : targets[Number(on.value)];
        if (!t) return;
        fields.ENTITY_TYPE = t.type;
        fields.ENTITY_ID = t.id;
        changed();
      },
    },
    choices,
  );
  const text = track(
    i,
    h('textarea', {
      id: `step-${i}-comment`,
      class: 'wide',
      rows: 3,
      value: fields.COMMENT ?? '',
      oninput: () => {
        fields.COMMENT = text.value;
        changed();
      },
    }),
  );
  return [label(S.commentOn, on), label(S.comment, text)];
}
/** Fields of each step type: [key, kind, required]. Kinds: text, area, number, kv, select:… */
const FIELDS = {
  http: [
    ['method', 'method', true],
    ['url', 'text', true],
    ['headers', 'kv-flat', false],
    ['body', 'kv', false],
    ['timeoutMs', 'number', false],
    ['secret', 'text', false],
  ],
  telegram: [
    ['chatId', 'text', false],
    ['text', 'area', true],
    ['parseMode', 'parseMode', false],
  ],
  email: [
    ['to', 'text', true],
    ['subject', 'text', true],
    ['text', 'area', false],
    ['html', 'area', false],
    ['from', 'text', false],
  ],
  sms: [
    ['to', 'text', true],
    ['text', 'area', true],
  ],
  bitrix: [
    ['method', 'text', true],
    ['params', 'kv', false],
  ],
};
const LABEL = {
  method: 'method',
  url: 'url',
  headers: 'headers',
  body: 'body',
  timeoutMs: 'timeout',
  secret: 'secret',
  chatId: 'chatId',
  text: 'text',
  parseMode: 'parseMode',
  to: 'to',
  subject: 'subject',
  html: 'html',
  from: 'from',
  params: 'params',
};

const { h, fill, label, opt } = createDom({ readOnly: !admin });

/**
 * The entity root the trigger's events are about (`deal` for ONCRMDEALUPDATE), as the server
 * has it (server/rules/context.ts entityTypeOfEvent): a user field event (ONCRMDEALUSERFIELDADD)
 * is about a field, and a recurring deal's (ONCRMDEALRECURRINGADD) is not a deal's.
 */
function entityRoot() {
  const name = String((rule.on || [])[0] || '').toUpperCase();
  if (/USERFIELD|RECURRING/.test(name)) return undefined;
  const m = /^ON(?:CRM)?(DEAL|LEAD|CONTACT|COMPANY|QUOTE|INVOICE|ACTIVITY|DYNAMICITEM|TASK)/.exec(
    name,
  );
  if (!m) return undefined;
  return m[1] === 'DYNAMICITEM' ? 'item' : m[1].toLowerCase();
}
/**
 * Smart processes' metadata by entityTypeId ({fields, categories, stages}), 'loading', or
 * false when it failed.
 */
const itemMeta = new Map();
/** `ONCRMDYNAMICITEMUPDATE_128` → 128: the smart process the trigger names. */
const itemType = () => {
  const m = /^ONCRMDYNAMICITEM[A-Z]+_(\d+)$/.exec(String((rule.on || [])[0] || ''));
  return m ? Number(m[1]) : undefined;
};
function fieldsOf(root) {
  if (root === 'item') {
    const m = itemMeta.get(itemType());
    return m && Array.isArray(m.fields) ? m.fields : [];
  }
  return (meta && meta.entities && meta.entities[root]) || [];
}
/** Loads the fields, pipelines and stages of the trigger's smart process once, then shows them. */
function ensureItemFields() {
  const type = itemType();
  if (type === undefined || itemMeta.has(type)) return;
  itemMeta.set(type, 'loading');
  const sep = data.urls.metadata.includes('?') ? '&' : '?';
  fetch(`${data.urls.metadata}${sep}item=${type}`)
    .then((r) => (r.ok ? r.json() : false))
    .catch(() => false)
    .then((m) => {
      itemMeta.set(type, m && Array.isArray(m.fields) ? m : false);
      renderForm();
    });
}
const fieldInfo = (code) => fieldsOf(entityRoot()).find((f) => f.code === code);
const nameIn = (categories, id) => (categories.find((c) => c.id === id) || {}).name || String(id);
/** Stages grouped under their pipelines' names, in the order the stages came. */
function stageGroups(stages, categories) {
  const groups = new Map();
  for (const s of stages) {
    if (!groups.has(s.categoryId)) groups.set(s.categoryId, []);
    groups.get(s.categoryId).push([s.id, s.name]);
  }
  return [...groups].map(([id, items]) => ({
    label: `${S.pipeline}: ${nameIn(categories, id)}`,
    items,
  }));
}
/** The trigger's smart process's stage field (`stageId`, or `STAGE_ID` as typed in JSON). */
const isItemStage = (code, f) =>
  entityRoot() === 'item' &&
  (code === 'stageId' ||
    code === 'STAGE_ID' ||
    (f && f.type === 'crm_status' && /^DYNAMIC_\d+_STAGE_/.test(f.statusType || '')));

// ---- JSON side -------------------------------------------------------------------------

const jsonArea = h('textarea', {
  id: 'rule-json',
  spellcheck: 'false',
  readOnly: !admin,
  keepEnabled: true,
  'aria-label': S.json,
  oninput: () => {
    let next;
    try {
      next = JSON.parse(jsonArea.value);
    } catch {
      jsonError.hidden = false;
      return;
    }
    if (!isObj(next)) {
      jsonError.hidden = false;
      return;
    }
    jsonError.hidden = true;
    carryOrigins(rule, next);
    rule = next;
    undo = null;
    // A refusal's paths were about the rule as sent; the JSON may have moved anything.
    if (refusal) dropRefusal();
    notSavedAnyMore();
    renderForm();
  },
});
const jsonError = h('p', { class: 'error', id: 'json-error', text: S.jsonInvalid, hidden: true });

/**
 * The rule as edited in the JSON keeps what each step (and header) was saved as, where it is
 * clear which step is which: the step at the same place with the same name, one moved under
 * its unique name, or the step at the same place, of the same type, whose old name is gone
 * and whose new one is no other step's (renamed). A header renamed in a step is one gone and
 * one new. Otherwise the step counts as new (its secrets are asked for again).
 */
function carryOrigins(before, after) {
  const old = Array.isArray(before.actions) ? before.actions : [];
  const now = Array.isArray(after.actions) ? after.actions : [];
  const namesOf = (list) => list.filter(isObj).map((a) => a.name);
  const oldNames = namesOf(old);
  const newNames = namesOf(now);
  const once = (names, n) => names.filter((x) => x === n).length === 1;
  now.forEach((a, i) => {
    if (!isObj(a)) return;
    const here = isObj(old[i]) ? old[i] : undefined;
    let src;
    if (here && here.name === a.name) src = here;
    else if (a.name && once(oldNames, a.name) && once(newNames, a.name))
      src = old.find((o) => isObj(o) && o.name === a.name);
    else if (
      here &&
      here.type === a.type &&
      !newNames.includes(here.name ?? '') &&
      !oldNames.includes(a.name ?? '')
    )
      src = here;
    if (!src || !src[ORIGIN]) return;
    Object.defineProperty(a, ORIGIN, { value: src[ORIGIN] });
    const was = src[HEADERS_FROM];
    if (!was) return;
    const headers = isObj(a.headers) ? Object.keys(a.headers) : [];
    const kept = new Map(headers.filter((n) => was.has(n)).map((n) => [n, was.get(n)]));
    const gone = [...was.keys()].filter((n) => !headers.includes(n));
    const added = headers.filter((n) => !was.has(n));
    if (gone.length === 1 && added.length === 1) kept.set(added[0], was.get(gone[0]));
    a[HEADERS_FROM] = kept;
  });
}

function tidy() {
  if (Array.isArray(rule.when) && rule.when.length === 0) delete rule.when;
}
/** The form changed the rule: show its JSON. */
function changed() {
  tidy();
  jsonArea.value = JSON.stringify(rule, null, 2);
  jsonError.hidden = true;
  notSavedAnyMore();
  showPipelineHints();
  followTrigger();
}

/**
 * "Try it"'s event follows the rule's first event until the admin types one there: on a new
 * rule it stayed empty after an event was ticked, and the admin had to type ONCRMDEALUPDATE.
 */
function followTrigger() {
  const box = document.getElementById('try-event');
  if (box && !tryEventTyped) box.value = (rule.on || [])[0] || '';
}

/** A deal's STAGE_SEMANTIC_ID or a lead's STATUS_SEMANTIC_ID: its stage's group. */
const isSemantic = (code) =>
  (entityRoot() === 'deal' && code === 'STAGE_SEMANTIC_ID') ||
  (entityRoot() === 'lead' && code === 'STATUS_SEMANTIC_ID');

/**
 * The pipeline a deal stage condition keeps to, where the portal has several: a stage is one
 * pipeline's, so "Stage becomes Deal successful" (General) never matched a deal won in
 * another pipeline, and nothing said so (found in a walk). Undefined where the condition
 * names stages of more than one pipeline, or none.
 */
function onePipeline(c) {
  if (entityRoot() !== 'deal' || !isObj(c) || c.field !== 'STAGE_ID' || !meta) return undefined;
  const categories = meta.categories || [];
  if (categories.length < 2) return undefined;
  const op = opOf(c);
  if (op === 'changed') return undefined;
  const values = (op === 'in' ? (Array.isArray(c.in) ? c.in : []) : [c[op]]).map(String);
  const ids = new Set(
    values
      .map((v) => (meta.stages || []).find((s) => s.id === v)?.categoryId)
      .filter((x) => x !== undefined),
  );
  return ids.size === 1 ? nameIn(categories, [...ids][0]) : undefined;
}
/** Says under each deal stage condition which pipeline it keeps to (onePipeline). */
function showPipelineHints() {
  (Array.isArray(rule.when) ? rule.when : []).forEach((c, i) => {
    const row = document.getElementById(`cond-${i}`);
    if (!row) return;
    const pipeline = onePipeline(c);
    let hint = document.getElementById(`cond-${i}-pipeline`);
    if (!pipeline) return hint?.remove();
    if (!hint) {
      hint = h('p', { class: 'muted', id: `cond-${i}-pipeline` });
      row.after(hint);
    }
    // The pipeline's name is the portal's data, not the page's words.
    const [before, after = ''] = S.onePipeline.split('{pipeline}');
    hint.replaceChildren(before, h('bdi', { translate: 'no', text: pipeline }), after);
  });
}
/**
 * "Saved." stays only while the rule is as saved: the next edit takes it away, and so the
 * result of a dry run of the rule as it was (it would judge conditions no longer there).
 */
function notSavedAnyMore() {
  if (document.getElementById('rule-saved'))
    document.getElementById('save-result')?.replaceChildren();
  document.getElementById('dry-result')?.replaceChildren();
}

// ---- conditions ------------------------------------------------------------------------

const opOf = (c) => OPS.find((o) => o in c) || 'equals';

function choicesFor(code) {
  const f = fieldInfo(code);
  if (isItemStage(code, f)) {
    const m = itemMeta.get(itemType());
    return m && m.stages && m.stages.length ? stageGroups(m.stages, m.categories) : undefined;
  }
  // A deal's or lead's stage group, the same in every pipeline (describe.ts SEMANTICS).
  if (isSemantic(code)) return [{ items: ['P', 'S', 'F'].map((k) => [k, S[`semantic.${k}`]]) }];
  if (!meta || !f) return undefined;
  if (f.statusType === 'DEAL_STAGE' || (entityRoot() === 'deal' && code === 'STAGE_ID')) {
    return stageGroups(meta.stages, meta.categories);
  }
  // A lead's stage: the portal's lead stages (the status list STATUS), in their order.
  if (f.statusType === 'STATUS' && entityRoot() === 'lead') {
    const stages = meta.leadStages || [];
    return stages.length ? [{ items: stages.map((st) => [st.id, st.name]) }] : undefined;
  }
  // A quote's or an old invoice's status: the portal's lists QUOTE_STATUS / INVOICE_STATUS.
  const statuses =
    f.statusType === 'QUOTE_STATUS'
      ? meta.quoteStatuses
      : f.statusType === 'INVOICE_STATUS'
        ? meta.invoiceStatuses
        : undefined;
  if (statuses) {
    return statuses.length ? [{ items: statuses.map((st) => [st.id, st.name]) }] : undefined;
  }
  if (f.items && f.items.length) return [{ items: f.items.map((i) => [i.id, i.value]) }];
  if (f.type === 'user') return [{ items: meta.users.map((u) => [u.id, u.name]) }];
  // An activity's type (crm.activity.fields' crm_enum_activitytype: CCrmActivityType).
  if (f.type === 'crm_enum_activitytype') {
    return [{ items: ACTIVITY_TYPES.map(([id, key]) => [id, S[`activityType.${key}`] || id]) }];
  }
  if (f.type === 'crm_category') {
    const m = entityRoot() === 'item' ? itemMeta.get(itemType()) : meta;
    const categories = (m && m.categories) || [];
    return categories.length
      ? [{ items: categories.map((c) => [String(c.id), c.name]) }]
      : undefined;
  }
  if (f.type === 'char' || f.type === 'boolean') {
    return [
      {
        items: [
          ['Y', S.yes],
          ['N', S.no],
        ],
      },
    ];
  }
  return undefined;
}

function valueControl(c, i) {
  const op = opOf(c);
  if (op === 'changed') return null;
  const choices = choicesFor(c.field);
  const current =
    op === 'in' ? (Array.isArray(c.in) ? c.in : []).map(String) : [String(c[op] ?? '')];
  if (choices) {
    // A value the lists do not hold (an inactive user, a removed stage, JSON typed by hand)
    // is shown as its code and stays picked: never hidden, never dropped by an edit.
    const listed = new Set(choices.flatMap((g) => g.items.map(([v]) => v)));
    const unlisted = current.filter((v) => v !== '' && !listed.has(v));
    const select = h(
      'select',
      {
        id: `cond-value-${i}`,
        multiple: op === 'in',
        onchange: () => {
          const picked = [...select.selectedOptions].map((o) => o.value).filter((v) => v !== '');
          if (op === 'in') c.in = picked;
          else c[op] = picked[0] ?? '';
          changed();
        },
      },
      op === 'in' ? null : opt('', S.choose, false),
      choices.map((g) => {
        const options = g.items.map(([v, t]) => opt(v, t, current.includes(v)));
        return g.label ? h('optgroup', { label: g.label, translate: 'no' }, options) : options;
      }),
      unlisted.map((v) => opt(v, v, true)),
    );
    return label(S.value, select);
  }
  // A smart process whose stages could not be read: say so beside the code field.
  const loaded = itemMeta.get(itemType());
  const noStages =
    loaded !== undefined && loaded !== 'loading' && isItemStage(c.field, fieldInfo(c.field))
      ? h('span', { class: 'muted', id: `cond-value-${i}-hint`, text: S.itemStagesMissing })
      : null;
  // A number field's value is saved as a number: Bitrix24 sends the amount as "1500.00",
  // which equals 1500 but not the text "1500" (server/rules/fields.ts sameValue). Written
  // as a Russian admin writes it, "2 500,00" is 2500 too; "1,500" (a thousands comma or a
  // decimal one?) stays text, and the save warns of it.
  const numeric = ['integer', 'double'].includes((fieldInfo(c.field) || {}).type);
  const typed = (v) => {
    const n = v.replace(/[\s\u00a0\u202f]/g, '').replace(/,(\d{1,2})$/, '.$1');
    return numeric && /^-?\d+(\.\d+)?$/.test(n) ? Number(n) : v;
  };
  const input = h('input', {
    id: `cond-value-${i}`,
    value: current.join(op === 'in' ? ', ' : ''),
    inputmode: numeric ? 'decimal' : null,
    oninput: () => {
      // A list is split at its commas; in a number field, not at a decimal comma ("2500,00,
      // 3000": a comma followed by one or two digits and then the end, a comma or a ";").
      if (op === 'in')
        c.in = input.value
          .split(numeric ? /,(?!\d{1,2}\s*(?:,|;|$))|;/ : ',')
          .map((s) => typed(s.trim()))
          .filter((v) => v !== '');
      else c[op] = typed(input.value);
      changed();
    },
  });
  return [label(S.value, input), noStages];
}

/** The value's control of condition `i` (and its hint), marked for `redrawValue`. */
function valueParts(c, i) {
  const parts = [valueControl(c, i)].flat().filter(Boolean);
  for (const p of parts) p.setAttribute('data-cond-value', String(i));
  return parts;
}

/**
 * A condition's field or operator was chosen: only its value's control is drawn anew. The
 * whole form drawn anew replaced the list being typed in, so choosing a field by typing its
 * name ("Deal Stage") picked one per letter (Modified By, Contact, Close Date…).
 */
function redrawValue(c, i) {
  const row = document.getElementById(`cond-${i}`);
  if (!row) return renderForm();
  for (const n of row.querySelectorAll(`[data-cond-value="${i}"]`)) n.remove();
  const before = document.getElementById(`cond-remove-${i}`);
  for (const p of valueParts(c, i)) row.insertBefore(p, before);
}

function conditionRow(c, i) {
  const fields = fieldsOf(entityRoot());
  let fieldControl;
  if (fields.length) {
    const known = fields.some((f) => f.code === c.field);
    fieldControl = h(
      'select',
      {
        id: `cond-field-${i}`,
        onchange: () => {
          c.field = fieldControl.value;
          const op = opOf(c);
          if (op === 'in') c.in = [];
          else if (op !== 'changed') c[op] = '';
          changed();
          redrawValue(c, i);
        },
      },
      c.field ? null : opt('', S.choose, true),
      known || !c.field ? null : opt(c.field, c.field, true),
      fields.map((f) => opt(f.code, `${f.title} (${f.code})`, f.code === c.field)),
    );
  } else {
    fieldControl = h('input', {
      id: `cond-field-${i}`,
      value: c.field || '',
      oninput: () => {
        c.field = fieldControl.value;
        changed();
      },
    });
  }
  const opSelect = h(
    'select',
    {
      id: `cond-op-${i}`,
      onchange: () => {
        const before = opOf(c);
        const v = c[before];
        delete c[before];
        const op = opSelect.value;
        if (op === 'changed') c.changed = true;
        else if (op === 'in') c.in = before === 'in' || v === undefined || v === '' ? [] : [v];
        else c[op] = Array.isArray(v) ? (v[0] ?? '') : v === true || v === undefined ? '' : v;
        changed();
        redrawValue(c, i);
      },
    },
    OPS.map((o) => h('option', { value: o, text: S[`op.${o}`], selected: o === opOf(c) })),
  );
  // No event ticked yet: no record, so no list of its fields (a bare text box said nothing).
  const noEvent =
    !fields.length && !(rule.on || []).length
      ? h('span', { class: 'muted', id: `cond-field-${i}-hint`, text: S.eventFirst })
      : null;
  return h(
    'div',
    { class: 'row condition', id: `cond-${i}` },
    label(S.field, fieldControl),
    noEvent,
    label(S.operator, opSelect),
    valueParts(c, i),
    admin &&
      h('button', {
        type: 'button',
        class: 'secondary',
        id: `cond-remove-${i}`,
        text: S.remove,
        'aria-label': S.removeCondition.replace('{n}', String(i + 1)),
        onclick: () => {
          const [item] = rule.when.splice(i, 1);
          carryRefusal('when', (k) => (k === i ? null : k > i ? k - 1 : k));
          const op = opOf(item);
          const what = [item.field, S[`op.${op}`], op === 'changed' ? '' : valueText(item[op])];
          removed('when', i, item, `${S.conditionRemoved} ${what.filter(Boolean).join(' ')}`);
        },
      }),
  );
}

// ---- steps -----------------------------------------------------------------------------

/** Remembers where the caret is in a templatable field, for the step's picker. */
const track = (i, el) => {
  el.addEventListener('focus', () => lastField.set(i, el.id));
  return el;
};

function kvEditor(step, i, key, nest) {
  const value = step[key];
  const id = `${i}:${key}`;
  let rows;
  const cached = kvRows.get(id);
  if (value !== undefined && !isObj(value)) rows = undefined;
  else if (cached && JSON.stringify(unflatten(cached, nest)) === JSON.stringify(value || {})) {
    rows = cached;
  } else {
    rows = flatten(value || {}, nest);
    // Each header row remembers what its header was saved as, whatever it is renamed to.
    if (rows && key === 'headers' && step[HEADERS_FROM])
      for (const r of rows) r.from = step[HEADERS_FROM].get(r[0]);
  }
  if (!rows) return h('p', { class: 'muted', id: `step-${i}-${key}-json`, text: S.editInJson });
  kvRows.set(id, rows);
  const boxes = [];
  /** Says next to a row's name what keeps the row from being saved as typed. */
  const mark = () => {
    rowProblems(rows, nest, key === 'headers').forEach((problem, j) => {
      const box = boxes[j];
      if (!box) return;
      const noteId = `${box.id}-error`;
      document.getElementById(noteId)?.remove();
      if (!problem) {
        box.removeAttribute('aria-invalid');
        box.removeAttribute('aria-describedby');
        return;
      }
      box.setAttribute('aria-invalid', 'true');
      box.setAttribute('aria-describedby', noteId);
      box.parentElement.after(
        h('p', { class: 'error form-error', id: noteId, role: 'alert', text: S[problem] }),
      );
    });
  };
  const write = () => {
    const obj = unflatten(rows, nest);
    if (Object.keys(obj).length) step[key] = obj;
    else delete step[key];
    if (key === 'headers' && step[HEADERS_FROM])
      step[HEADERS_FROM] = new Map(rows.filter((r) => r[0] && r.from).map((r) => [r[0], r.from]));
    changed();
    mark();
  };
  const editor = h(
    'div',
    { class: 'kv', id: `step-${i}-${key}` },
    rows.map((r, j) => {
      const k = h('input', {
        id: `step-${i}-${key}-k-${j}`,
        value: r[0],
        'aria-label': S.key,
        placeholder: S.key,
        oninput: () => {
          r[0] = k.value.trim();
          write();
        },
      });
      boxes.push(k);
      const v = track(
        i,
        h('input', {
          id: `step-${i}-${key}-v-${j}`,
          value: r[1],
          class: 'wide',
          'aria-label': S.value,
          oninput: () => {
            r[1] = v.value;
            write();
          },
        }),
      );
      return h(
        'div',
        { class: 'row' },
        k,
        v,
        admin &&
          h('button', {
            type: 'button',
            class: 'secondary',
            text: S.remove,
            'aria-label': S.removeRow
              .replace('{n}', String(j + 1))
              .replace('{list}', S[LABEL[key]])
              .replace('{step}', String(i + 1)),
            id: `step-${i}-${key}-rm-${j}`,
            onclick: () => {
              rows.splice(j, 1);
              write();
              renderForm();
            },
          }),
      );
    }),
    admin &&
      h('button', {
        type: 'button',
        class: 'secondary',
        id: `step-${i}-${key}-add`,
        text: S.addField,
        'aria-label': S.addFieldTo
          .replace('{list}', S[LABEL[key]])
          .replace('{step}', String(i + 1)),
        onclick: () => {
          rows.push(['', '']);
          renderForm();
          document.getElementById(`step-${i}-${key}-k-${rows.length - 1}`)?.focus();
        },
      }),
  );
  mark();
  return editor;
}

function stepField(step, i, [key, kind, required]) {
  const id = `step-${i}-${key}`;
  const set = (v) => {
    if (v === '' && !required) delete step[key];
    else step[key] = v;
    changed();
    const hint = key === 'chatId' && document.getElementById(`step-${i}-nochat`);
    if (hint) hint.hidden = !noChat(step);
  };
  if (kind === 'kv' || kind === 'kv-flat') {
    // A group with a legend, not a label: a label around the rows made a click on its words
    // add an empty row, and named the first control after the whole list.
    return h(
      'fieldset',
      { class: 'kv-set' },
      h('legend', { text: S[LABEL[key]] }),
      kvEditor(step, i, key, kind === 'kv'),
    );
  }
  if (kind === 'method' || kind === 'parseMode') {
    const values = kind === 'method' ? METHODS : ['', 'HTML', 'MarkdownV2', 'Markdown'];
    const select = h(
      'select',
      { id, onchange: () => set(select.value) },
      values.map((v) =>
        v ? opt(v, v, (step[key] ?? '') === v) : h('option', { value: v, text: S.plain }),
      ),
    );
    return label(S[LABEL[key]], select);
  }
  const current = step[key];
  if (current !== undefined && typeof current !== 'string' && typeof current !== 'number') {
    return label(S[LABEL[key]], h('p', { class: 'muted', id, text: S.editInJson }));
  }
  if (kind === 'number') {
    const input = h('input', {
      id,
      type: 'number',
      value: current ?? '',
      oninput: () => set(input.value === '' ? '' : Number(input.value)),
    });
    return label(S[LABEL[key]], input);
  }
  const el = h(kind === 'area' ? 'textarea' : 'input', {
    id,
    class: 'wide',
    rows: kind === 'area' ? 3 : undefined,
    value: current === undefined ? '' : String(current),
    oninput: () => set(el.value),
  });
  // The signing secret is a key, never a template: tabbing through it on the way to the
  // picker put the picked value there instead of into the field the admin had left.
  if (key !== 'secret') track(i, el);
  return label(S[LABEL[key]], el);
}

/** The paths the template picker offers in step `i`, in groups. */
function pickerGroups(i) {
  const groups = [];
  const ent = entityRoot();
  // The event's own values by name, their path after it (a bare `event.name` read as code).
  const named = (p) => [p, S[`pick.${p}`] ? `${S[`pick.${p}`]} — ${p}` : p];
  const event = ['event.name', 'event.id', 'event.entityId'];
  groups.push([S.event, event.map(named)]);
  // A deal's, lead's, quote's or old invoice's contact and company are read with it
  // (processing/read-entities.ts `loadRelated`); an activity or a task brings only itself.
  const related = ['deal', 'lead', 'quote', 'invoice'].includes(ent);
  const roots = related ? [ent, 'contact', 'company'] : ent ? [ent] : [];
  for (const r of roots) {
    const fs = fieldsOf(r);
    if (fs.length)
      groups.push([
        S[`root.${r}`] || r,
        fs.map((f) => [`${r}.${f.code}`, `${f.title} — ${r}.${f.code}`]),
      ]);
  }
  const earlier = (Array.isArray(rule.actions) ? rule.actions : [])
    .slice(0, i)
    .map((a) => a.name)
    .filter(Boolean);
  if (earlier.length) {
    groups.push([
      S.earlierSteps,
      earlier.flatMap((n) => [
        [`steps.${n}.response`, `steps.${n}.response`],
        [`steps.${n}.status`, `steps.${n}.status`],
      ]),
    ]);
  }
  groups.push([S.portal, [named('portal.domain')]]);
  return groups;
}

const pickerOptions = (i) =>
  pickerGroups(i).map(([name, items]) =>
    h(
      'optgroup',
      { label: name, translate: 'no' },
      items.map(([v, t]) => opt(v, t)),
    ),
  );

/** The step name `{{steps.…}}` of later steps used when the step's name box was entered. */
const REFS_AS = Symbol('referred to as');

/**
 * Step `i` was renamed from `from` to `to`: later steps' `{{steps.from…}}` now say
 * `{{steps.to…}}`. Not when another step has either name (which one is meant is unclear).
 */
function renameRefs(i, from, to) {
  const all = steps();
  if (!from || !to || from === to) return;
  if (all.some((a, j) => j !== i && isObj(a) && (a.name === from || a.name === to))) return;
  const quoted = from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const ref = new RegExp(`(\\{\\{\\s*steps\\s*\\.\\s*)${quoted}(?=\\s*[.?|}\\[])`, 'g');
  const rename = (v) =>
    typeof v === 'string'
      ? v.replace(ref, (_m, head) => `${head}${to}`)
      : Array.isArray(v)
        ? v.map(rename)
        : isObj(v)
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rename(x)]))
          : v;
  let renamed = false;
  for (const a of all.slice(i + 1)) {
    if (!isObj(a)) continue;
    for (const [k, v] of Object.entries(a)) {
      if (k === 'type' || k === 'name') continue;
      const next = rename(v);
      if (JSON.stringify(next) === JSON.stringify(v)) continue;
      a[k] = next;
      renamed = true;
    }
  }
  if (!renamed) return;
  changed();
  // Redrawn once the focus has moved on (this runs as the name box loses it): a redraw now
  // would put the keyboard back in the name box and lose the click on another field.
  setTimeout(renderForm);
}

/** A step was named or renamed: later steps' pickers offer its answer (no re-render). */
function refreshPickers() {
  (Array.isArray(rule.actions) ? rule.actions : []).forEach((_a, j) => {
    const select = document.getElementById(`step-${j}-pick`);
    if (select) select.replaceChildren(...pickerOptions(j));
  });
}

function picker(i) {
  const select = h('select', { id: `step-${i}-pick`, 'aria-label': S.picker }, pickerOptions(i));
  const sub = h('input', {
    id: `step-${i}-pick-sub`,
    placeholder: S.subPath,
    'aria-label': S.subPath,
    size: 12,
  });
  const hint = h('p', { class: 'warn', id: `step-${i}-pick-hint`, role: 'status', hidden: true });
  const insert = h('button', {
    type: 'button',
    class: 'secondary',
    id: `step-${i}-pick-insert`,
    text: S.insert,
    onclick: () => {
      const el = document.getElementById(lastField.get(i) || '');
      // No field of this step chosen yet: say where the value would go, insert nothing.
      hint.hidden = Boolean(el);
      hint.textContent = el ? '' : S.pickFieldFirst;
      if (!el) return;
      const extra = sub.value.trim().replace(/^\.+/, '');
      const text = `{{${select.value}${extra ? `.${extra}` : ''}}}`;
      const at = el.selectionStart ?? el.value.length;
      const end = el.selectionEnd ?? at;
      el.value = el.value.slice(0, at) + text + el.value.slice(end);
      el.dispatchEvent(new Event('input'));
      el.focus();
      el.setSelectionRange(at + text.length, at + text.length);
      sub.value = '';
    },
  });
  return h(
    'div',
    { class: 'picker' },
    h('div', { class: 'row' }, label(S.picker, select), sub, insert),
    hint,
  );
}

/**
 * The step as another type. What the step held as each type it had is kept aside (not in
 * the rule's JSON), so switching back brings its URL, headers or recipients back. The name
 * and continue-on-error go along; a type the step never had takes its message text.
 */
function switchType(step, type) {
  const stash = step[STASH] || new Map();
  stash.set(kindOf(step), JSON.parse(JSON.stringify(step)));
  const known = stash.has(type);
  const next = known ? stash.get(type) : NEW_STEP[type]();
  const said = typeof step.text === 'string' ? step.text : commentText(step);
  if (!known && typeof said === 'string') {
    if ('text' in next) next.text = said;
    else if (isCommentStep(next)) next.params.fields.COMMENT = said;
  }
  // Name and continue-on-error are the step's, whatever its type.
  delete next.name;
  delete next.continueOnError;
  if (step.name) next.name = step.name;
  if (step.continueOnError) next.continueOnError = true;
  Object.defineProperty(next, STASH, { value: stash, enumerable: false });
  if (step[ORIGIN]) Object.defineProperty(next, ORIGIN, { value: step[ORIGIN] });
  if (step[HEADERS_FROM]) next[HEADERS_FROM] = step[HEADERS_FROM];
  return next;
}

/** A message channel the server has not set up (TELEGRAM_BOT_TOKEN, SMTP_URL, SMS_PROVIDER). */
const unsetChannel = (type) =>
  ['telegram', 'email', 'sms'].includes(type) && isObj(data.channels) && !data.channels[type];
/** A Telegram step that names no chat, on a portal with no alert chat: it has nowhere to go. */
const noChat = (step) =>
  isObj(data.channels) && data.channels.portalChat === false && !String(step.chatId ?? '').trim();

function stepBox(step, i) {
  const kind = kindOf(step);
  const typeSelect = h(
    'select',
    {
      id: `step-type-${i}`,
      onchange: () => {
        rule.actions[i] = switchType(step, typeSelect.value);
        for (const k of [...kvRows.keys()]) if (k.startsWith(`${i}:`)) kvRows.delete(k);
        changed();
        renderForm();
      },
    },
    TYPES.filter((t) => t !== 'comment' || kind === 'comment' || commentTargets().length).map((t) =>
      h('option', {
        value: t,
        text: unsetChannel(t) ? `${S[`type.${t}`]} ${S.notSetUp}` : S[`type.${t}`],
        selected: t === kind,
      }),
    ),
  );
  const name = h('input', {
    id: `step-name-${i}`,
    value: step.name || '',
    // The name later steps' `{{steps.…}}` use, until the edit is done (a redraw while typing
    // focuses the box again: it keeps the name from before the edit).
    onfocus: () => {
      if (!(REFS_AS in step)) step[REFS_AS] = step.name;
    },
    oninput: () => {
      if (name.value.trim()) step.name = name.value.trim();
      else delete step.name;
      changed();
      refreshPickers();
    },
    onchange: () => {
      const from = step[REFS_AS];
      delete step[REFS_AS];
      renameRefs(i, from, step.name);
    },
  });
  const coe = h('input', {
    type: 'checkbox',
    id: `step-coe-${i}`,
    checked: step.continueOnError === true,
    onchange: () => {
      if (coe.checked) step.continueOnError = true;
      else delete step.continueOnError;
      changed();
    },
  });
  const result = h('p', { id: `step-sent-${i}`, class: 'muted', hidden: true });
  return h(
    'fieldset',
    { class: 'step', id: `step-${i}` },
    h('legend', { text: `${i + 1}. ${S[`type.${kind}`] || kind}` }),
    h(
      'div',
      { class: 'row' },
      label(S.stepType, typeSelect),
      label(S.stepName, name),
      h('label', { class: 'check' }, coe, h('span', { text: S.continueOnError })),
    ),
    unsetChannel(kind) &&
      h('p', { class: 'warn', id: `step-${i}-unset`, text: S[`unset.${kind}`] }),
    kind === 'telegram' &&
      !unsetChannel(kind) &&
      h('p', { class: 'warn', id: `step-${i}-nochat`, text: S.noChat, hidden: !noChat(step) }),
    kind === 'comment'
      ? commentFields(step, i)
      : (FIELDS[step.type] || []).map((f) => stepField(step, i, f)),
    admin && picker(i),
    admin &&
      h(
        'div',
        { class: 'row' },
        h('button', {
          type: 'button',
          class: 'secondary',
          id: `step-send-${i}`,
          text: S.sendOnce,
          onclick: oneAtATime(() => sendStep(i, result)),
        }),
        [
          ['up', i > 0, -1, '↑', S.moveUp, S.moveStepUp],
          ['down', i < steps().length - 1, 1, '↓', S.moveDown, S.moveStepDown],
        ].map(
          ([dir, can, by, arrow, text, aria]) =>
            can &&
            h(
              'button',
              {
                type: 'button',
                class: 'secondary',
                id: `step-${dir}-${i}`,
                'aria-label': aria.replace('{n}', String(i + 1)),
                onclick: () => moveStep(i, i + by, dir),
              },
              h('span', { 'aria-hidden': 'true', text: `${arrow} ` }),
              text,
            ),
        ),
        h('button', {
          type: 'button',
          class: 'secondary',
          id: `step-remove-${i}`,
          text: S.remove,
          'aria-label': S.removeStep.replace('{n}', String(i + 1)),
          onclick: () => {
            const [item] = rule.actions.splice(i, 1);
            shiftKvRows(i, -1);
            carryRefusal('actions', (k) => (k === i ? null : k > i ? k - 1 : k));
            const type = S[`type.${kindOf(item)}`] || item.type;
            const text = `${S.stepRemoved} ${i + 1}. ${type}${item.name ? ` (${item.name})` : ''}`;
            removed('actions', i, item, text);
          },
        }),
      ),
    result,
  );
}

/**
 * Step `i` goes to `j` (its neighbour). The step objects move, so each keeps what it was
 * saved as (its credentials); a later step's `{{steps.…}}` that now comes before the step it
 * reads is said at the save. The keyboard stays on the same button of the moved step, or on
 * its other arrow where the list ends.
 */
function moveStep(i, j, dir) {
  const list = rule.actions;
  const moved = list[i];
  [list[i], list[j]] = [list[j], list[i]];
  swapKvRows(i, j);
  lastField.delete(i);
  lastField.delete(j);
  carryRefusal('actions', (k) => (k === i ? j : k === j ? i : k));
  changed();
  renderForm();
  const other = dir === 'up' ? 'down' : 'up';
  (
    document.getElementById(`step-${dir}-${j}`) || document.getElementById(`step-${other}-${j}`)
  )?.focus();
  // The focused button names only the place ("Move step 1 down"): say which step went where.
  const status = document.getElementById('builder-status');
  if (status) {
    const type = S[`type.${kindOf(moved)}`] || moved.type;
    status.textContent = S.stepMoved
      .replace('{what}', `${type}${moved.name ? ` (${moved.name})` : ''}`)
      .replace('{n}', String(j + 1));
  }
}

// ---- the form --------------------------------------------------------------------------

const valueText = (v) => (Array.isArray(v) ? v.join(', ') : v === undefined ? '' : String(v));

/** A step or condition was removed: offer to put it back, with the keyboard on "Undo". */
function removed(where, index, item, text) {
  undo = { where, index, item, text };
  changed();
  renderForm();
  document.getElementById('undo-remove')?.focus();
}

/** "Removed: …  [Undo]" under the list it was removed from. */
function undoBar(where) {
  if (!undo || undo.where !== where || !admin) return null;
  return h(
    'p',
    { class: 'notice', id: 'undo-bar', role: 'status' },
    h('span', { text: `${undo.text} ` }),
    h('button', {
      type: 'button',
      class: 'secondary',
      id: 'undo-remove',
      text: S.undo,
      onclick: () => {
        const { where: list, index, item } = undo;
        undo = null;
        const items = Array.isArray(rule[list]) ? rule[list] : [];
        const at = Math.min(index, items.length);
        items.splice(at, 0, item);
        rule[list] = items;
        if (list === 'actions') shiftKvRows(at, 1);
        carryRefusal(list, (k) => (k >= at ? k + 1 : k));
        changed();
        renderForm();
        const first = list === 'when' ? `cond-field-${index}` : `step-type-${index}`;
        document.getElementById(first)?.focus();
      },
    }),
  );
}

const form = h('div', { id: 'rule-form' });
/** A part the form cannot show (JSON typed by hand): edited in the JSON. */
const inJson = () => h('p', { class: 'muted', text: S.editInJson });

function renderForm() {
  ensureItemFields();
  // Redrawing replaces every control: the keyboard stays on the one it was on (by its id).
  const active = document.activeElement;
  const focusedId = active && form.contains(active) ? active.id : '';
  const caret =
    focusedId && typeof active.selectionStart === 'number' ? active.selectionStart : null;
  // A selection too (a field tabbed or clicked into just before a redraw is all selected).
  const caretEnd = caret === null ? null : (active.selectionEnd ?? caret);
  // JSON being typed may hold anything: read it as lists without rewriting what was typed.
  const on = Array.isArray(rule.on) ? rule.on : [];
  const actions = Array.isArray(rule.actions) ? rule.actions : [];
  const when = Array.isArray(rule.when) ? rule.when : [];
  const name = h('input', {
    id: 'rule-name',
    class: 'wide',
    value: rule.name || '',
    oninput: () => {
      rule.name = name.value;
      changed();
    },
  });
  const events = data.events.map((e) => {
    const box = h('input', {
      type: 'checkbox',
      id: `on-${e.name}`,
      value: e.name,
      checked: on.includes(e.name),
      onchange: () => {
        rule.on = box.checked
          ? [...on.filter((x) => x !== e.name), e.name]
          : on.filter((x) => x !== e.name);
        changed();
        renderForm();
      },
    });
    return h(
      'label',
      { class: 'check' },
      box,
      // What the event means first, as the log and the rules page say it; its code after.
      e.label ? h('span', { text: `${e.label} ` }) : null,
      h('code', { translate: 'no', class: 'event-code', text: e.name }),
      h('span', { class: 'muted', text: ` (${e.bound ? S.subscribed : S.notSubscribed})` }),
    );
  });
  const other = h('input', {
    id: 'on-other',
    size: 30,
    value: otherText,
    'aria-label': S.otherEvent,
    'aria-invalid': otherError ? 'true' : undefined,
    'aria-describedby': otherError ? 'on-other-error' : undefined,
    oninput: () => {
      otherText = other.value;
      if (!otherError) return;
      otherError = '';
      document.getElementById('on-other-error')?.remove();
      other.removeAttribute('aria-invalid');
      other.removeAttribute('aria-describedby');
    },
    onkeydown: (e) => {
      if (e.key !== 'Enter') return;
      e.preventDefault();
      addOther.click();
    },
  });
  const addOther = h('button', {
    type: 'button',
    class: 'secondary',
    id: 'on-add',
    text: S.addEvent,
    onclick: () => {
      const name = other.value.trim().toUpperCase();
      // Refused where it was typed, the text kept: never dropped without a word.
      if (!/^ON[A-Z0-9_]{2,64}$/.test(name)) {
        otherError = S.eventInvalid;
        renderForm();
        document.getElementById('on-other')?.focus();
        return;
      }
      otherText = '';
      otherError = '';
      if (!data.events.some((e) => e.name === name))
        data.events.push({ name, label: '', bound: false });
      if (!on.includes(name)) rule.on = [...on, name];
      changed();
      renderForm();
    },
  });
  const sla = h('input', {
    id: 'rule-sla',
    type: 'number',
    min: 1,
    // server/rules/schema.ts SLA_MAX_SECONDS: 30 days.
    max: 2592000,
    step: 1,
    value: rule.slaSeconds ?? '',
    oninput: () => {
      if (sla.value === '') delete rule.slaSeconds;
      else rule.slaSeconds = Number(sla.value);
      changed();
    },
  });
  const enabled = h('input', {
    type: 'checkbox',
    id: 'rule-enabled',
    checked: rule.enabled !== false,
    onchange: () => {
      if (enabled.checked) delete rule.enabled;
      else rule.enabled = false;
      changed();
    },
  });
  fill(
    form,
    meta === null ? h('p', { class: 'muted', id: 'meta-loading', text: S.loading }) : null,
    meta === false ? h('p', { class: 'warn', id: 'meta-failed', text: S.metaFailed }) : null,
    label(S.name, name),
    h(
      'fieldset',
      { id: 'rule-on' },
      h('legend', { text: S.trigger }),
      h('div', { class: 'events' }, events),
      admin && h('div', { class: 'row' }, label(S.otherEvent, other), addOther),
      otherError &&
        h('p', {
          class: 'error form-error',
          id: 'on-other-error',
          role: 'alert',
          text: otherError,
        }),
    ),
    h(
      'fieldset',
      { id: 'rule-when' },
      h('legend', { text: S.conditions }),
      when.length
        ? when.map((c, i) => (isObj(c) ? conditionRow(c, i) : inJson()))
        : h('p', { class: 'muted', text: S.noConditions }),
      undoBar('when'),
      admin &&
        h('button', {
          type: 'button',
          class: 'secondary',
          id: 'add-condition',
          text: S.addCondition,
          onclick: () => {
            rule.when = [...when, { field: '', equals: '' }];
            changed();
            renderForm();
            document.getElementById(`cond-field-${when.length}`)?.focus();
          },
        }),
    ),
    h(
      'fieldset',
      { id: 'rule-steps' },
      h('legend', { text: S.steps }),
      actions.map((a, i) => (isObj(a) ? stepBox(a, i) : inJson())),
      undoBar('actions'),
      admin &&
        h('button', {
          type: 'button',
          class: 'secondary',
          id: 'add-step',
          text: S.addStep,
          onclick: () => {
            rule.actions = [...actions, NEW_STEP.http()];
            changed();
            renderForm();
            document.getElementById(`step-type-${actions.length}`)?.focus();
          },
        }),
    ),
    h(
      'div',
      { class: 'row' },
      label(S.sla, sla),
      h('label', { class: 'check' }, enabled, h('span', { text: S.enabled })),
    ),
  );
  const again = focusedId ? document.getElementById(focusedId) : null;
  if (again) {
    again.focus();
    if (caret !== null && typeof again.setSelectionRange === 'function') {
      again.setSelectionRange(caret, caretEnd);
    }
  }
  // The controls are new: a refusal's notes go back beside them, in the list's numbering,
  // and the form's own list follows its notes (a step moved or removed takes its lines).
  if (refusal) showRefusal(false);
  else if (saveResult.querySelector('#rule-errors[data-form]') && !listUnsaved(false)) {
    saveResult.replaceChildren();
  }
  showPipelineHints();
}

// ---- server calls ----------------------------------------------------------------------

/**
 * A button's handler that runs once at a time: while its request is out the button is
 * disabled and further clicks do nothing. A double click on "Save rule" sent the new rule
 * twice: the first saved it, the second was refused ("a rule named … already exists") and
 * said "Not saved" over a saved rule; "Send this step once" sent twice.
 */
function oneAtATime(run) {
  let busy = false;
  return async (ev) => {
    if (busy) return;
    busy = true;
    const button = ev && ev.currentTarget;
    if (button) {
      button.disabled = true;
      button.setAttribute('aria-busy', 'true');
    }
    try {
      await run(ev);
    } finally {
      busy = false;
      if (button) {
        button.disabled = false;
        button.removeAttribute('aria-busy');
      }
    }
  };
}

async function post(url, fields) {
  const body = new URLSearchParams({ _csrf: data.csrf, ...fields });
  try {
    const res = await fetch(url, {
      method: 'POST',
      // JSON: a refusal (an admin whose rights Bitrix24 withdrew) comes as `{error}` in
      // the user's language, not as a page that would replace the builder.
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
    });
    const text = await res.text();
    // Over the form's limit (a pasted text of megabytes): the server's words are Express's.
    if (res.status === 413) return { status: 413, json: { error: S.tooLarge }, ended: false };
    try {
      return {
        status: res.status,
        json: JSON.parse(text),
        ended: res.status === 401 || res.status === 403,
      };
    } catch {
      // Not an answer of the builder's routes: the session's gate (401, an ended session) or
      // the form's token (403). Its text says why, in the user's language.
      const said = res.headers.get('content-type')?.startsWith('text/plain') ? text.trim() : '';
      return {
        status: res.status,
        json: { error: said.slice(0, 300) || S.failed },
        ended: res.status === 401 || res.status === 403,
      };
    }
  } catch {
    return { status: 0, json: { error: S.failed } };
  }
}

/**
 * Where in the form a validation error's JSON path is, in the words the form uses:
 * `$.actions[1].to` → "Step 2, To", `$.when[0].value` → "Condition 1", `$.name` → "Rule
 * name"; null for a path the form has no words for.
 */
function placeOf(path) {
  const step = /^\$\.actions\[(\d+)\](?:\.(\w+))?/.exec(path);
  if (step) {
    const n = S.stepN.replace('{n}', String(Number(step[1]) + 1));
    const key = step[2];
    const comment = key === 'params' && kindOf(steps()[Number(step[1])]) === 'comment';
    const word =
      key === 'type'
        ? S.stepType
        : key === 'name'
          ? S.stepName
          : comment
            ? S.comment
            : S[LABEL[key]];
    return key && word ? `${n}, ${word}` : n;
  }
  const cond = /^\$\.when\[(\d+)\]/.exec(path);
  if (cond) return S.conditionN.replace('{n}', String(Number(cond[1]) + 1));
  if (/^\$\.actions$/.test(path)) return S.steps;
  if (/^\$\.when$/.test(path)) return S.conditions;
  if (/^\$\.name\b/.test(path)) return S.name;
  if (/^\$\.on\b/.test(path)) return S.trigger;
  if (/^\$\.slaSeconds\b/.test(path)) return S.sla;
  return null;
}

/**
 * `{errors: [{path, message}]}` or `{error}` as a list: each error where it is in the form,
 * then its JSON path, smaller, for whoever edits the JSON.
 */
function problems(json) {
  if (Array.isArray(json.errors)) {
    return h(
      'ul',
      {},
      json.errors.map((e) => {
        const path = h('code', { class: 'muted', translate: 'no', text: e.path });
        const place = placeOf(e.path);
        return place
          ? h('li', {}, h('strong', { text: place }), `: ${e.message} `, path)
          : h('li', {}, path, `: ${e.message}`);
      }),
    );
  }
  return h('span', { text: json.error || S.failed });
}

const saveResult = h('div', { id: 'save-result' });
/**
 * What the form holds but could not put in the rule (refused rows, an event typed but not
 * added): said next to each field; saving then would lose it, so nothing is sent.
 */
function unsaved() {
  // Whatever the last save was refused for, this save is about the form as it is now.
  refusal = null;
  // The JSON box holds edits the form never took (it keeps the last valid rule): saving the
  // form's rule would drop them and say "Saved.".
  if (!jsonError.hidden) {
    fill(
      saveResult,
      h('div', { class: 'error', id: 'rule-errors' }, h('span', { text: S.jsonFixFirst })),
    );
    jsonArea.focus();
    return true;
  }
  if (otherText.trim() && !otherError) {
    otherError = S.eventNotAdded;
    renderForm();
  }
  return listUnsaved(true);
}

/**
 * The form's own notes (unsaved) listed above it, each with its place; false when there are
 * none. Listed again at each redraw, so a moved or removed step's lines follow it.
 */
function listUnsaved(focus) {
  const notes = [...form.querySelectorAll('.form-error')];
  if (!notes.length) return false;
  fill(
    saveResult,
    h(
      'div',
      { class: 'error', id: 'rule-errors', 'data-form': '1' },
      h('span', { text: `${S.notSaved} ${S.fixMarked}` }),
      h(
        'ul',
        {},
        notes.map((n) => {
          // Where each note is, as the form names it ("Step 1, Body"), with the row's name:
          // two rows refused alike otherwise read as the same sentence twice.
          const row = /^step-(\d+)-(\w+)-k-\d+-error$/.exec(n.id);
          const box = document.querySelector(`[aria-describedby="${n.id}"]`);
          const place = row
            ? placeOf(`$.actions[${row[1]}].${row[2]}`)
            : n.id === 'on-other-error'
              ? S.trigger
              : null;
          const named = place && box && box.value ? `${place}, "${box.value}"` : place;
          return named
            ? h('li', {}, h('strong', { text: named }), `: ${n.textContent}`)
            : h('li', { text: n.textContent });
        }),
      ),
    ),
  );
  if (focus) document.querySelector(`[aria-describedby="${notes[0].id}"]`)?.focus();
  return true;
}

async function save() {
  if (unsaved()) return;
  const { json, ended } = await post(data.urls.save, {
    rule: JSON.stringify(rule),
    original,
    steps: origins(),
    headers: headerOrigins(),
  });
  if (json.ok) {
    refusal = null;
    rule = markOrigins(json.rule);
    savedJson = JSON.stringify(rule);
    undo = null;
    original = rule.name;
    kvRows.clear();
    changed();
    renderForm();
    const warnings = Array.isArray(json.warnings) ? json.warnings : [];
    // "Saved." once: with warnings, their heading says it ("Saved, but…"), not a line above
    // it too (a Russian walk read "Сохранено." then "Сохранено, но…").
    fill(
      saveResult,
      warnings.length === 0
        ? h('p', { class: 'notice', id: 'rule-saved', text: S.saved })
        : h(
            'div',
            { class: 'warn', id: 'rule-warnings', role: 'status' },
            // A rule saved off (a draft) hears only of its steps' text: said as such.
            h('span', {
              id: 'rule-saved',
              text: rule.enabled === false ? S.savedOffWarnings : S.savedWarnings,
            }),
            h(
              'ul',
              {},
              warnings.map((w) => h('li', { text: w })),
            ),
          ),
    );
    const sep = data.urls.edit.includes('?') ? '&' : '?';
    history.replaceState(null, '', `${data.urls.edit}${sep}name=${encodeURIComponent(original)}`);
    // The page is now this rule's edit page: its heading says so, with the name as saved.
    const heading = document.querySelector('h1');
    if (heading) fill(heading, `${S.titleEdit}: `, h('span', { translate: 'no', text: original }));
  } else {
    const errors = Array.isArray(json.errors) ? sortedErrors(json.errors) : undefined;
    refusal = { json: { ...json, errors }, ended, sent: JSON.parse(JSON.stringify(rule)) };
    showRefusal(true);
  }
}

const saveOnce = oneAtATime(save);

/** Rank of an error's path in the form, top to bottom: name, events, conditions, steps, SLA. */
function formOrder(path) {
  const m = /^\$\.(\w+)(?:\[(\d+)\])?/.exec(String(path || ''));
  const at = m ? ['name', 'on', 'when', 'actions', 'slaSeconds', 'enabled'].indexOf(m[1]) : -1;
  return [at === -1 ? 9 : at, m && m[2] !== undefined ? Number(m[2]) : -1];
}

/** Errors in the order their fields come in the form (the server's order within a field). */
function sortedErrors(errors) {
  return errors
    .map((e, n) => ({ e, n, at: formOrder(e.path) }))
    .sort((x, y) => x.at[0] - y.at[0] || x.at[1] - y.at[1] || x.n - y.n)
    .map((x) => x.e);
}

/**
 * A step or condition moved, went or came back: the refusal's errors about `list[k]` follow
 * it to `to(k)`, and those of a removed one (`to` gives null) go with it.
 */
function carryRefusal(list, to) {
  const errors = refusal && refusal.json.errors;
  if (!errors) return;
  const re = new RegExp(`^\\$\\.${list}\\[(\\d+)\\]`);
  refusal.json.errors = sortedErrors(
    errors.flatMap((e) => {
      const m = re.exec(String(e.path || ''));
      if (!m) return [e];
      const k = to(Number(m[1]));
      return k === null ? [] : [{ ...e, path: `$.${list}[${k}]${e.path.slice(m[0].length)}` }];
    }),
  );
}

/**
 * Whether an error about a whole list is settled by the form as it is now: the events once
 * they differ from those sent, "no steps" or "no conditions" once the list's length does.
 */
function settled(path) {
  const sent = refusal.sent || {};
  const length = (v) => (Array.isArray(v) ? v.length : 0);
  if (/^\$\.on\b/.test(path)) return JSON.stringify(rule.on) !== JSON.stringify(sent.on);
  if (path === '$.actions') return length(rule.actions) !== length(sent.actions);
  if (path === '$.when') return length(rule.when) !== length(sent.when);
  return false;
}

/** The refusal goes: its list above the form and its notes beside the fields. */
function dropRefusal() {
  refusal = null;
  saveResult.replaceChildren();
  markFields([], false);
}

/**
 * Shows the refusal: the list above the form and each error's note beside its field, alike
 * numbered; the keyboard goes to the first marked field when `focus`. Gone once nothing of it
 * is left (a session that ended stays said until the next save).
 */
function showRefusal(focus) {
  const { json, ended } = refusal;
  if (json.errors) json.errors = json.errors.filter((e) => !settled(String(e.path || '')));
  if (json.errors && json.errors.length === 0 && !ended) {
    dropRefusal();
    return;
  }
  fill(
    saveResult,
    h(
      'div',
      { class: 'error', id: 'rule-errors' },
      h('span', { text: `${S.notSaved} ` }),
      problems(json),
      // The page still holds the edits; reopening the app would lose them.
      ended && h('p', { id: 'session-ended', text: S.sessionEnded }),
    ),
  );
  markFields(json.errors, focus);
  // Each listed error knows its note beside the field (markFields numbers them alike).
  saveResult
    .querySelectorAll('#rule-errors > ul > li')
    .forEach((li, n) => li.setAttribute('data-note', `field-error-${n}`));
}

/**
 * A refusal is about the rule as it was sent: once a field it marked is edited, its note
 * beside the field and its line in the list go, and the list with its last line. Errors the
 * form has no field for stay until the next save.
 */
function fieldEdited(e) {
  const control = e.target;
  if (!refusal || !(control instanceof Element)) return;
  const marked = /^field-error-(\d+)$/.exec(control.getAttribute('aria-describedby') || '');
  const errors = refusal.json.errors;
  if (!marked || !errors || control.getAttribute('aria-invalid') !== 'true') return;
  errors.splice(Number(marked[1]), 1);
  showRefusal(false);
}
form.addEventListener('input', fieldEdited);
form.addEventListener('change', fieldEdited);

/**
 * The control a validation error's JSON path is about, when the form has one:
 * `$.actions[1].to` → the second step's recipient, `$.when[0]…` → the first condition,
 * `$.name`, `$.on`.
 */
function controlOf(path) {
  const step = /^\$\.actions\[(\d+)\](?:\.(\w+))?/.exec(path);
  if (step) {
    return (
      (step[2] && document.getElementById(`step-${step[1]}-${step[2]}`)) ||
      (step[2] === 'params' && document.getElementById(`step-${step[1]}-comment`)) ||
      document.getElementById(`step-type-${step[1]}`)
    );
  }
  const cond = /^\$\.when\[(\d+)\](?:\.(\w+))?/.exec(path);
  if (cond) {
    const part = cond[2] === 'field' ? 'field' : cond[2] ? 'value' : 'field';
    return document.getElementById(`cond-${part}-${cond[1]}`);
  }
  if (/^\$\.name\b/.test(path)) return document.getElementById('rule-name');
  if (/^\$\.on\b/.test(path)) return document.querySelector('[id^="on-"]');
  if (/^\$\.slaSeconds\b/.test(path)) return document.getElementById('rule-sla');
  // The list itself (no steps, no conditions): said beside the button that adds one.
  if (/^\$\.actions$/.test(path)) return document.getElementById('add-step');
  if (/^\$\.when$/.test(path)) return document.getElementById('add-condition');
  return null;
}

/**
 * Where a control's note goes: under the list of events for a trigger, under the whole row
 * of a condition (beside it, it would squeeze the row's lists at 600 px), else after it.
 */
const noteAfter = (control) =>
  control.closest('.events') ||
  control.closest('.condition') ||
  control.closest('label') ||
  control;

/**
 * Says each error next to its control too (the list above keeps the path): the control is
 * marked invalid and described by the message, and the first one gets the focus.
 */
function markFields(errors, focus) {
  for (const old of document.querySelectorAll('.field-error')) old.remove();
  for (const el of document.querySelectorAll('[aria-describedby^="field-error-"]')) {
    el.removeAttribute('aria-invalid');
    el.removeAttribute('aria-describedby');
  }
  if (!Array.isArray(errors)) return;
  let first = null;
  errors.forEach((e, n) => {
    const control = controlOf(e.path);
    if (!control) return;
    const note = h('p', { class: 'field-error error', id: `field-error-${n}`, text: e.message });
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('aria-describedby', note.id);
    noteAfter(control).after(note);
    first = first || control;
  });
  if (first && focus) first.focus();
}

const tryEvent = h('input', {
  id: 'try-event',
  size: 22,
  value: (rule.on || [])[0] || '',
  oninput: () => {
    tryEventTyped = true;
  },
});
const tryId = h('input', { id: 'try-id', size: 8, placeholder: S.recordId });
const dryResult = h('div', { id: 'dry-result' });

/**
 * A dry run's reason with the record's field codes in the words the form uses ("Amount is
 * 2500", not "OPPORTUNITY is 2500"): a code that starts a clause (the text's start, after
 * "; " or "(") and is followed by a space. Values are quoted, so a value is never taken.
 */
function withFieldTitles(text) {
  let out = String(text || '');
  for (const f of fieldsOf(entityRoot())) {
    if (!f.title || f.title === f.code) continue;
    const code = f.code.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out.replace(new RegExp(`(^|; |\\()${code}(?= )`, 'g'), (_, lead) => lead + f.title);
  }
  return out;
}

async function runDry() {
  const { json } = await post(data.urls.dryRun, {
    rule: JSON.stringify(rule),
    event: tryEvent.value,
    id: tryId.value,
  });
  if (!json.result) {
    fill(dryResult, h('div', { class: 'error', id: 'dry-error' }, problems(json)));
    return;
  }
  const r = json.result;
  fill(
    dryResult,
    h(
      'p',
      { id: 'dry-verdict', 'data-matched': String(r.matched) },
      h('b', {
        text: r.matched
          ? r.disabled
            ? S.matchedOnceOn
            : r.assumed
              ? S.matchedIfChanged
              : S.matched
          : S.notMatched,
      }),
      ' ',
      h('span', { class: 'muted', text: withFieldTitles(r.reason) }),
    ),
    // Matched with the record's values taken as just changed: why an event now would not.
    r.assumed
      ? h(
          'p',
          { id: 'dry-now', class: 'muted' },
          `${S.matchedNow} ${S.notMatched} (`,
          h('span', { text: withFieldTitles(r.assumed.now) }),
          ')',
        )
      : null,
    (r.steps || []).map((s) =>
      h('pre', {
        text: `${s.index + 1}. ${S[`type.${kindOf(steps()[s.index] || s)}`] || s.type}${s.name ? ` (${s.name})` : ''}\n${s.error || s.rendered}`,
      }),
    ),
  );
}

/**
 * A test send, just made, at the top of the page's list of this rule's test sends (the list
 * is there for a saved rule only), as the page would list it after a reload.
 */
function addTestSend(test) {
  const table = document.getElementById('test-sends');
  if (!table || !test) return;
  const row = h(
    'tr',
    { 'data-status': test.status },
    h('td', { text: test.when }),
    h('td', { translate: 'no' }, h('bdi', { text: test.step })),
    h(
      'td',
      {},
      h('span', { class: `badge b-${test.status}`, text: test.statusText }),
      test.error ? [' ', h('code', { text: test.error })] : null,
    ),
  );
  const head = table.querySelector('tr');
  if (head) head.after(row);
  else table.append(row);
  table.hidden = false;
  const none = document.getElementById('test-sends-none');
  if (none) none.hidden = true;
}

/** Where a test send went, from its request summary (server/actions/*: `request`). */
function sentTo(r) {
  if (!r || typeof r !== 'object') return '';
  const to = Array.isArray(r.to) ? r.to.join(', ') : r.to;
  if (r.type === 'http') return `${r.method} ${r.url}`;
  if (r.type === 'telegram') return `Telegram ${to}`;
  if (r.type === 'sms') return `SMS ${to}`;
  if (r.type === 'email') return `e-mail ${to}`;
  if (r.type === 'bitrix') return `Bitrix24 ${r.method}`;
  return '';
}

async function sendStep(i, out) {
  const { json } = await post(data.urls.send, {
    rule: JSON.stringify(rule),
    original,
    steps: origins(),
    headers: headerOrigins(),
    index: String(i),
    event: tryEvent.value,
    id: tryId.value,
  });
  out.hidden = false;
  addTestSend(json.test);
  if (json.ok) {
    out.className = 'notice';
    const unfilled = Array.isArray(json.unfilled) ? json.unfilled : [];
    fill(
      out,
      h('span', { text: S.sent }),
      sentTo(json.request)
        ? h('span', { translate: 'no', text: ` → ${sentTo(json.request)}` })
        : null,
      json.response && json.response.status
        ? h('code', { text: ` ${json.response.status}` })
        : null,
      // An earlier step's output does not exist in a test: what read it went out as written.
      unfilled.length
        ? h(
            'div',
            { class: 'warn', id: `step-unfilled-${i}` },
            `${S.unfilled} `,
            h('code', { translate: 'no', text: unfilled.join(', ') }),
          )
        : null,
    );
  } else {
    out.className = 'error';
    fill(
      out,
      h('span', { text: `${S.sendFailed} ` }),
      problems(json),
      // The Record ID box is in "Try it", at the bottom of the form: a way there (after a
      // space: read as text, the sentence and the button ran together, "…with.Enter a…").
      json.needsRecord ? ' ' : null,
      json.needsRecord
        ? h('button', {
            type: 'button',
            class: 'secondary',
            id: `step-to-record-${i}`,
            text: S.toRecordId,
            onclick: () => {
              tryId.scrollIntoView({ block: 'center' });
              tryId.focus();
            },
          })
        : null,
    );
  }
}

// ---- start -----------------------------------------------------------------------------

if (original) markOrigins(rule);

/**
 * The rule as last saved (or opened): leaving the page with other edits asks first, and so
 * does text typed but not in the rule yet (an event name not added, a half-typed JSON edit).
 */
let savedJson = '';
const typedNotTaken = () =>
  !jsonError.hidden || (document.getElementById('on-other')?.value ?? '').trim() !== '';
window.addEventListener('beforeunload', (e) => {
  if (!admin || (JSON.stringify(rule) === savedJson && !typedNotTaken())) return;
  e.preventDefault();
  e.returnValue = '';
});

fill(
  root,
  form,
  admin &&
    h('p', {}, h('button', { type: 'button', id: 'save-rule', text: S.save, onclick: saveOnce })),
  saveResult,
  h('h2', { text: S.json }),
  jsonArea,
  jsonError,
  admin &&
    h(
      'section',
      { id: 'try-it' },
      h('h2', { text: S.tryIt }),
      h('p', { class: 'muted', text: S.tryHint }),
      h(
        'div',
        { class: 'row' },
        label(S.event, tryEvent),
        label(S.recordId, tryId),
        h('button', {
          type: 'button',
          class: 'secondary',
          id: 'dry-run',
          text: S.dryRun,
          onclick: oneAtATime(runDry),
        }),
      ),
      dryResult,
    ),
);
changed();
savedJson = JSON.stringify(rule);
renderForm();

fetch(data.urls.metadata)
  .then((r) => (r.ok ? r.json() : false))
  .catch(() => false)
  .then((m) => {
    meta = m && m.entities ? m : false;
    renderForm();
    document.documentElement.dataset.builderReady = '1';
    performance.mark('builder-ready');
  });
