import type { Knex } from 'knex';
import type { ActionResult } from '../actions/index.js';
import type { StepOutput } from '../rules/context.js';
import type { BitrixAction, Rule } from '../rules/model.js';
import { recordActionRun, recordOwnWrite, type ActionRunRow } from '../../db/stores/processing.js';
import type { EventScope, ProcessContext } from './context.js';
import { writtenEntity } from './entity-reader.js';
import { eventsTriggeredBy } from '../rules/check-map.js';
import { portalEvents } from '../../db/stores/portals.js';

/** A step's run row before its outcome is known. */
export type RunBase = Omit<
  ActionRunRow,
  | 'id'
  | 'attempts'
  | 'status'
  | 'request_summary'
  | 'response_summary'
  | 'output'
  | 'error'
  | 'finished_at'
>;

/**
 * The step succeeded: its request, response and output (for later steps' templates), on
 * `db` (the caller's transaction; the caller counts it in the metrics once committed).
 */
export async function recordSucceeded(
  ctx: ProcessContext,
  db: Knex,
  base: RunBase,
  result: ActionResult,
  out: StepOutput,
): Promise<void> {
  await recordActionRun(db, {
    ...base,
    status: 'succeeded',
    request_summary: JSON.stringify(result.request).slice(0, 4000),
    response_summary: JSON.stringify({
      status: result.response.status,
      ms: result.response.ms,
    }).slice(0, 1000),
    output: JSON.stringify(out).slice(0, 64_000),
    error: null,
    finished_at: ctx.now(),
  });
}

/** The step failed: its error, for the log and the next attempt. */
export async function recordFailed(ctx: ProcessContext, base: RunBase, e: Error): Promise<void> {
  await recordActionRun(ctx.deps.db, {
    ...base,
    status: 'failed',
    request_summary: null,
    response_summary: null,
    output: null,
    error: e.message.slice(0, 2000),
    finished_at: ctx.now(),
  });
  ctx.deps.metrics.actionRuns.inc({ type: base.action_type, outcome: 'failed' });
}

/**
 * A `bitrix` step that added or updated a record: forget the cached read, and remember the
 * write so the events it echoes back are recognised by the loop guard (evaluate.ts). Each
 * echo consumes one remembered write, so a write is remembered once per event of the
 * portal's it causes: an old invoice's add or update sends ONCRMINVOICESETSTATUS too
 * (`eventsTriggeredBy`), and an echo left without one would run the rule again.
 */
export async function noteOwnWrite(
  ctx: ProcessContext,
  db: Knex,
  scope: EventScope,
  rule: Rule,
  rendered: BitrixAction,
  response: unknown,
  /** The step run's idempotency key (its action_runs row, written in `db` already). */
  runKey: string,
): Promise<void> {
  const written = writtenEntity(rendered.method, rendered.params, response);
  if (!written) return;
  ctx.reader.invalidate(scope.portal.id, written.type, written.id);
  if (await changesNothing(db, scope, written, rendered, runKey)) return;
  const row = {
    portal_id: scope.portal.id,
    entity_type: written.type,
    entity_id: written.id,
    rule_name: rule.name,
    depth: scope.event.chain_depth ?? 0,
    written_at: ctx.now(),
  };
  for (let i = 0; i < echoCount(scope, rendered); i++) await recordOwnWrite(db, row);
}

/** Types saved only when a value changes (test/emulator/crm-store.ts cites the core). */
const SAVED_ONLY_WHEN_CHANGED = new Set(['deal', 'lead', 'contact', 'company', 'quote']);

/**
 * Whether an update is known to change no value of the event's own record, as read for this
 * job: Bitrix24 then saves nothing and sends no event (a deal, lead, contact, company, quote
 * or smart-process item is saved through the item factory, which stops before the save and
 * its events when nothing changed: CORE crm lib/Service/Operation.php, "no changes - no
 * actions"; an old invoice is saved, and its events sent, all the same). A remembered write
 * no echo takes was taken by the person's next change of the record within ten minutes, and
 * the loop guard skipped the rule for it. Only the same text counts as the same value, and
 * only for the event's first write: after any other `bitrix` step of the event succeeded
 * (this job's or an earlier attempt's, any rule's) the record as read may be out of date.
 * Anything less certain is taken as a change, as before.
 */
async function changesNothing(
  db: Knex,
  scope: EventScope,
  written: { type: string; id: string },
  rendered: BitrixAction,
  runKey: string,
): Promise<boolean> {
  const method = rendered.method.toLowerCase();
  const fields = (rendered.params ?? {})['fields'];
  const own =
    scope.entity !== undefined &&
    scope.event.entity_type === written.type &&
    String(scope.event.entity_id) === written.id;
  const update =
    (SAVED_ONLY_WHEN_CHANGED.has(written.type) && method === `crm.${written.type}.update`) ||
    (method === 'crm.item.update' && written.type.startsWith('dynamic:'));
  if (!own || !update || !isPlainObject(fields)) return false;
  const current = scope.entity!;
  const entries = Object.entries(fields);
  const same =
    entries.length > 0 &&
    entries.every(
      ([k, v]) =>
        Object.prototype.hasOwnProperty.call(current, k) &&
        isScalar(v) &&
        isScalar(current[k]) &&
        String(v) === String(current[k]),
    );
  if (!same) return false;
  const earlier = await db('action_runs')
    .where({ event_id: scope.event.id, action_type: 'bitrix', status: 'succeeded' })
    .whereNot('idempotency_key', runKey)
    .first('id');
  return earlier === undefined;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isScalar = (v: unknown): v is string | number =>
  typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/**
 * How many events of the portal's a write causes: those of `eventsTriggeredBy` the portal
 * binds (an event it does not bind never comes, and its remembered write would be taken by
 * a person's change), all of them (at least one) when its bindings are not known.
 */
function echoCount(scope: EventScope, rendered: BitrixAction): number {
  const events = eventsTriggeredBy(rendered.method, rendered.params);
  const bound = portalEvents(scope.portal);
  // Bindings known: as many as will come, none for a write whose events the portal does not
  // bind (a remembered write no echo takes would take a person's next change instead).
  if (bound.length > 0) return events.filter((e) => bound.includes(e)).length;
  return Math.max(1, events.length);
}
