import { randomUUID } from 'node:crypto';
import { isBitrixApiError } from '../../bitrix/errors.js';
import { Router, type Request, type Response } from 'express';
import type { Knex } from 'knex';
import type { Deps } from '../../deps.js';
import { createChannelCheck, runAction } from '../../actions/index.js';
import { entityOf } from '../../intake/entity.js';
import { createEntityReader } from '../../processing/entity-reader.js';
import { telegramChatGuard } from '../../processing/telegram-chats.js';
import { createDestinations, destinationOf } from '../../queue/destinations.js';
import { portalStepChat } from '../../../db/stores/alerts.js';
import type { RuleInput } from '../../rules/conditions.js';
import { buildTemplateContext } from '../../rules/context.js';
import { dryRun } from '../../rules/dry-run.js';
import type { Rule } from '../../rules/model.js';
import { relatedToLoad } from '../../rules/needs.js';
import { renderAction } from '../../rules/render-action.js';
import { checkEnvOrigins, maskMap, openAction, sealMap } from '../../rules/secret-fields.js';
import { validateEventMap, type MapError } from '../../rules/validate.js';
import type { PortalRow } from '../../../db/stores/portals.js';
import { getSnapshot } from '../../../db/stores/processing.js';
import { getRuleMap } from '../../rules/map-store.js';
import { placeholders, templateRoots } from '../../rules/templates.js';
import { withRenamedHeaders, withRenamedRule, withRenamedSteps } from '../../rules/saved-map.js';
import { listStepTests, recordStepTest, type StepTestRow } from '../../../db/stores/step-tests.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';
import { translateError, translateMessage } from '../i18n-messages.js';
import { maskForView } from '../mask-view.js';
import { mapWords } from '../i18n-map.js';
import { readableNote } from '../note-names.js';
import { noteStagesLookup } from './log-view.js';
import type { MetadataCache } from '../../rules/metadata.js';

/** A record's ID as Bitrix24 gives it: a number (CRM records, smart-process items, tasks). */
export const RECORD_ID = /^\d{1,20}$/;
/** Said when a dry run has no event or no such ID (the field is labelled "Record ID"). */
export const RECORD_ID_NEEDED =
  'Give an event name (e.g. ONCRMDEALUPDATE) and a record ID (a number).';

/** Longest the dry run waits for the portal's stage names to name them in its reason. */
const TRY_STAGES_WAIT_MS = 500;

/** The test sends of one rule for the builder page, newest first. */
export function listTestSends(db: Knex, portalId: number, ruleName: string) {
  return listStepTests(db, portalId, ruleName);
}

/**
 * A test send as the page's list shows it (views/ui/rule-builder.ejs, "test-sends"), for the
 * builder to add to that list at once: its time in the user's zone, its step, its outcome.
 */
function testRowView(
  res: Response,
  row: Pick<StepTestRow, 'created_at' | 'step_index' | 'step_name' | 'action_type'>,
  status: 'succeeded' | 'failed',
  error: string | null,
) {
  const { t, fmtTime } = res.locals as {
    t: (key: string) => string;
    fmtTime: (ms: number) => string;
  };
  return {
    when: fmtTime(row.created_at),
    step: `${row.step_index + 1}. ${row.step_name ?? row.action_type}`,
    status,
    statusText: t(`status.${status}`) || status,
    error,
  };
}

/** `$.rules[3].actions[0].url` → `$.actions[0].url` for the rule at index 3. */
export function relativeErrors(errors: MapError[], index: number, lang: 'en' | 'ru'): MapError[] {
  const own = `$.rules[${index}]`;
  return errors.map((e) => ({
    path: e.path === own ? '$' : e.path.startsWith(own) ? `$${e.path.slice(own.length)}` : e.path,
    message: translateMessage(e.message, lang),
  }));
}

type Checked = { ok: true; rule: Rule } | { ok: false; errors: MapError[] };

/** The rule being edited, checked on its own (paths relative to the rule). */
function checkRule(text: unknown, lang: 'en' | 'ru'): Checked {
  let json: unknown;
  try {
    json = JSON.parse(String(text ?? ''));
  } catch (e) {
    return { ok: false, errors: [{ path: '$', message: (e as Error).message }] };
  }
  const v = validateEventMap({ rules: [json] });
  if (v.ok) return { ok: true, rule: v.map.rules[0]! };
  return { ok: false, errors: relativeErrors(v.errors, 0, lang) };
}

class TryError extends Error {}

/** Template roots that are not a record read from the portal. */
const NOT_RECORDS = new Set(['event', 'steps', 'portal']);

/**
 * What the rule sees for `event` on record `id`: the record read now, its related records
 * when the rule reads them, and its last snapshot. No id: the event alone.
 */
async function ruleInput(
  deps: Deps,
  portal: PortalRow,
  memberId: string,
  rule: Rule,
  event: string,
  id: string,
): Promise<RuleInput> {
  const info = { name: event, memberId };
  const portalInfo = { domain: portal.domain, memberId };
  if (!id) return { event: info, previous: undefined, portal: portalInfo };
  const { type } = entityOf(event, { FIELDS: { ID: id } });
  if (!type || !RECORD_ID.test(id)) throw new TryError(RECORD_ID_NEEDED);
  const reader = createEntityReader(deps);
  const now = deps.clock.now().getTime();
  const entity = /DELETE$/.test(event) ? { ID: id } : await reader.read(portal, type, id, now);
  if (!entity) throw new TryError(`${type} ${id} does not exist on the portal.`);
  const related: Record<string, Record<string, unknown> | undefined> = {};
  for (const root of relatedToLoad([rule])) {
    const rid = entity[`${root.toUpperCase()}_ID`];
    if (rid && rid !== '0') {
      related[root] = (await reader.read(portal, root, String(rid), now)) ?? undefined;
    }
  }
  return {
    event: { ...info, entityType: type, entityId: id },
    entity,
    related,
    previous: await getSnapshot(deps.db, portal.id, type, id),
    portal: portalInfo,
  };
}

const eventOf = (req: Request, rule: Rule) => {
  const e = String((req.body as Record<string, unknown>).event ?? '')
    .trim()
    .toUpperCase();
  return /^ON[A-Z0-9_]{2,64}$/.test(e) ? e : rule.on[0]!;
};
const idOf = (req: Request) => String((req.body as Record<string, unknown>).id ?? '').trim();

/**
 * The form's `steps` (a JSON list of what each step was stored as) or `headers` (per step,
 * its renamed headers as `{now: storedAs}`), from builder.js.
 */
export function stepOrigins(field: unknown): unknown[] {
  try {
    const v: unknown = JSON.parse(String(field ?? '[]'));
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

/**
 * "Try it" in the builder: a dry run of the rule being edited on a chosen record, and "Send
 * this step once", which sends one step through the worker's own path (credentials opened
 * right before sending, the destination's circuit breaker, http-guard for private
 * addresses) and records it in step_tests, apart from action_runs: a test is never counted
 * as an event's action.
 */
export function tryRoutes(deps: Deps, metadata?: MetadataCache): Router {
  const noteStages = noteStagesLookup(metadata, () => deps.clock.now().getTime());
  const router = Router();
  let destinations: ReturnType<typeof createDestinations> | undefined;
  // The app's words in the page's language; a portal's answer (`remote`: "ID is not defined
  // or invalid") as it came, only the app's words around it translated (the phrases turned
  // its " is " into " = ").
  const fail = (
    res: Response,
    status: number,
    message: string,
    extra: object = {},
    remote = false,
  ) => {
    const { lang } = uiContext(res).user;
    const said = remote ? translateError(message, lang) : translateMessage(message, lang);
    return res.status(status).json({ error: maskForView(said), ...extra });
  };

  router.post('/ui/rules/builder/dry-run', requireAdmin, csrfProtection, async (req, res) => {
    const { portal, user } = uiContext(res);
    const checked = checkRule((req.body as Record<string, unknown>).rule, user.lang);
    if (!checked.ok) return void res.status(400).json({ errors: checked.errors });
    const event = eventOf(req, checked.rule);
    try {
      if (!idOf(req)) throw new TryError(RECORD_ID_NEEDED);
      const input = await ruleInput(deps, portal, user.memberId, checked.rule, event, idOf(req));
      // Credentials are never opened for a dry run: steps show them masked. A rule turned
      // off is tried as if on (an admin tries a rule before turning it on), and an event now
      // is said not to match it.
      const disabled = checked.rule.enabled === false;
      const tried = disabled ? { ...checked.rule, enabled: true } : checked.rule;
      const [dry] = dryRun(maskMap({ rules: [tried] }, deps.box), input, { assumeChange: true });
      const names = {
        words: mapWords(user.lang),
        stages: await noteStages(portal, [dry!.reason, dry!.assumed?.now], TRY_STAGES_WAIT_MS),
        entityType: input.event.entityType ?? null,
        event,
      };
      const named = (text: string) => readableNote(text, user.lang, [], names, 'reason');
      const result =
        disabled && dry!.matched
          ? { ...dry!, disabled: true, assumed: { now: 'rule is disabled' } }
          : dry!;
      res.json({
        result: {
          ...result,
          // In the words of the rules page and the log: "Type is "Call"", not `TYPE_ID = "2"`.
          reason: named(result.reason),
          assumed: result.assumed && { now: named(result.assumed.now) },
          steps: result.steps?.map((s) => ({
            ...s,
            rendered: s.rendered && maskForView(JSON.stringify(s.rendered)),
          })),
        },
      });
    } catch (e) {
      fail(res, e instanceof TryError ? 400 : 502, (e as Error).message, {}, isBitrixApiError(e));
    }
  });

  router.post('/ui/rules/builder/send-step', requireAdmin, csrfProtection, async (req, res) => {
    const { portal, user } = uiContext(res);
    const form = req.body as Record<string, unknown>;
    const checked = checkRule(form.rule, user.lang);
    if (!checked.ok) return void res.status(400).json({ errors: checked.errors });
    const rule = checked.rule;
    const index = Number(form.index);
    if (!Number.isInteger(index) || index < 0 || index >= rule.actions.length) {
      return void fail(res, 400, 'No such step.');
    }
    // Masked credentials stand for what the stored map holds for this rule and step. Those of
    // the operator's default map keep their whole request, as when the map is saved.
    const own = await getRuleMap(deps.db, user.memberId);
    // A rule renamed in the form (not saved yet) still has the credentials of its old name.
    const previous = withRenamedHeaders(
      withRenamedSteps(
        withRenamedRule(own ?? (await getRuleMap(deps.db)), String(form.original ?? ''), rule.name),
        rule.name,
        stepOrigins(form.steps),
        rule.actions.map((a) => a.name),
      ),
      rule.name,
      rule.actions.map((a, i) => a.name ?? `#${i}`),
      // The operator's default map: its credentials keep their whole request.
      own === undefined ? [] : stepOrigins(form.headers),
    );
    const sealed = sealMap(
      { rules: [rule] },
      {
        box: deps.box,
        previous,
        previousIsDefault: own === undefined,
        envNames: deps.config.actions.secretEnv,
      },
    );
    if (!sealed.ok) {
      return void res.status(400).json({ errors: relativeErrors(sealed.errors, 0, user.lang) });
    }
    const action = sealed.map.rules[0]!.actions[index]!;
    const base: Omit<
      StepTestRow,
      'id' | 'status' | 'request_summary' | 'response_summary' | 'error'
    > = {
      portal_id: portal.id,
      rule_name: rule.name,
      step_index: index,
      step_name: action.name ?? null,
      action_type: action.type,
      user_id: user.userId,
      created_at: deps.clock.now().getTime(),
    };
    // A step that reads the record needs one to read: say so rather than "not available".
    const reads = [...templateRoots(action)].filter((r) => !NOT_RECORDS.has(r));
    if (!idOf(req) && reads.length > 0) {
      return void fail(
        res,
        400,
        `This step reads {{${reads[0]}…}}: give the ID of a record to send it with.`,
        // The page points at the Record ID box of "Try it", at the bottom of the form.
        { needsRecord: true },
      );
    }
    let rendered;
    try {
      const input = await ruleInput(
        deps,
        portal,
        user.memberId,
        rule,
        eventOf(req, rule),
        idOf(req),
      );
      // Earlier steps did not run: their `{{steps.…}}` stay as written.
      rendered = renderAction(
        openAction(action, deps.box, deps.config.actions.secretEnv),
        buildTemplateContext(input),
        { keepSteps: true },
      );
      checkEnvOrigins(action, rendered, deps.config.actions.secretEnvOrigins);
    } catch (e) {
      return void fail(res, e instanceof TryError ? 400 : 422, (e as Error).message);
    }
    destinations ??= createDestinations(deps, {
      concurrency: deps.config.worker.destinationConcurrency,
      // Test sends' failures open a shared channel for all only if it does not answer.
      check: createChannelCheck({ config: deps.config }),
    });
    try {
      const telegramChat =
        rendered.type === 'telegram' ? await portalStepChat(deps.db, portal.member_id) : null;
      const result = await destinations.run(
        destinationOf(rendered, deps.config, portal),
        () =>
          runAction(action, rendered, {
            config: deps.config,
            logger: deps.logger,
            idempotencyKey: `b24h-test-${randomUUID()}`,
            bitrix: (method, params) => deps.bitrix.call(portal, method, params),
            guard: deps.httpGuard,
            mailRoutes: deps.mailRoutes,
            clock: deps.clock,
            telegramChat,
            telegramChats:
              rendered.type === 'telegram' ? telegramChatGuard(deps, portal.id) : undefined,
          }),
        // The admin asked for it now: the portal's own open destination is probed at once.
        { probeNow: true, portalId: portal.id },
      );
      const response = { status: result.response.status, ms: result.response.ms };
      await recordStepTest(deps.db, {
        ...base,
        status: 'succeeded',
        request_summary: JSON.stringify(result.request).slice(0, 4000),
        response_summary: JSON.stringify(response),
        error: null,
      });
      deps.logger.info(
        { memberId: user.memberId, rule: rule.name, step: index, test: true },
        'rule step sent as a test',
      );
      // What went out as written: `{{steps.…}}` of earlier steps, which a test does not run.
      const unfilled = [
        ...new Set(placeholders(rendered).filter((p) => /^steps\./.test(p.trim()))),
      ].map((p) => `{{${p.trim()}}}`);
      res.json({
        ok: true,
        request: result.request,
        response,
        unfilled,
        test: testRowView(res, base, 'succeeded', null),
      });
    } catch (e) {
      const message = maskForView((e as Error).message).slice(0, 2000);
      await recordStepTest(deps.db, {
        ...base,
        status: 'failed',
        request_summary: null,
        response_summary: null,
        error: message,
      });
      deps.logger.info(
        { memberId: user.memberId, rule: rule.name, step: index, test: true, err: message },
        'rule step test failed',
      );
      fail(res, 502, message, { test: testRowView(res, base, 'failed', message) });
    }
  });

  return router;
}
