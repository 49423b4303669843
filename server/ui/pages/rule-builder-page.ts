import { APP_OWN_EVENTS } from '../../install/bindings.js';
import { Router, type Request, type Response } from 'express';
import { within } from '../../lib/within.js';
import type { Deps } from '../../deps.js';
import { grantedScopes } from '../../bitrix/scopes.js';
import { checkMap } from '../../rules/check-map.js';
import { serverChannels } from '../../config/warnings.js';
import { portalStepChat } from '../../../db/stores/alerts.js';
import { ruleFieldWarnings } from '../../rules/field-check.js';
import { createMetadataCache, isItemType, type MetadataCache } from '../../rules/metadata.js';
import type { EventMap, Rule } from '../../rules/model.js';
import { saveMapSealed } from '../../rules/saved-map.js';
import { withScopeErrors } from '../../rules/scopes.js';
import { maskMap, revealMap } from '../../rules/secret-fields.js';
import {
  ruleNameKey,
  savedBeforeChecks,
  validateEventMap,
  validateKeepingOld,
} from '../../rules/validate.js';
import { portalEvents } from '../../../db/stores/portals.js';
import { effectiveMapWithSource } from '../../rules/map-store.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';
import { BUILDER_EN } from '../i18n-builder.js';
import { translateMessage } from '../i18n-messages.js';
import type { MessageKey } from '../i18n.js';
import { NAMED_EVENTS, SUPPORTED_EVENTS } from '../supported-events.js';
import { listTestSends, relativeErrors, stepOrigins, tryRoutes } from './rule-builder-try.js';

/** What a new rule starts as: nothing chosen yet. */
const NEW_RULE = { name: '', on: [], when: [], actions: [] };

/** The script's words, in the user's language (it holds none of its own). */
function scriptStrings(t: (k: MessageKey) => string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(BUILDER_EN)) {
    if (k.startsWith('rb.js.')) out[k.slice(6)] = t(k as MessageKey);
  }
  for (const type of ['http', 'telegram', 'email', 'sms', 'bitrix'] as const) {
    out[`type.${type}`] = t(`action.${type}`);
  }
  return out;
}

/** The events the trigger offers: supported ones, the manifest's, the bound ones, the rule's. */
function triggerEvents(deps: Deps, res: Response, rule: { on?: unknown }) {
  const { portal, user } = uiContext(res);
  const bound = new Set(portalEvents(portal));
  const names = new Set<string>(SUPPORTED_EVENTS.map((e) => e.name));
  // The app's own bindings (its lifecycle, ONOFFLINEEVENT, the token test) are no trigger
  // an admin picks, as the subscriptions page says; a rule already on one keeps it.
  for (const e of [...deps.manifest.events, ...bound]) {
    if (!APP_OWN_EVENTS.includes(e.toUpperCase())) names.add(e.toUpperCase());
  }
  for (const e of Array.isArray(rule.on) ? rule.on : []) names.add(String(e).toUpperCase());
  const label = new Map(NAMED_EVENTS.map((e) => [e.name, user.lang === 'ru' ? e.ru : e.en]));
  return [...names].map((name) => ({ name, label: label.get(name) ?? '', bound: bound.has(name) }));
}

/** The portal's map (as pages show it: credentials masked) with `rule` put in place of `original`. */
export function withRule(
  shown: EventMap,
  rule: unknown,
  original: string,
): { map: unknown; index: number } {
  const rules: unknown[] = [...shown.rules];
  const name = (rule as { name?: unknown })?.name;
  let index = original ? shown.rules.findIndex((r) => r.name === original) : -1;
  if (index < 0 && typeof name === 'string') index = shown.rules.findIndex((r) => r.name === name);
  if (index < 0) index = rules.push(rule) - 1;
  else rules[index] = rule;
  return { map: { rules }, index };
}

const body = (req: Request) => req.body as Record<string, unknown>;

/**
 * The rule builder: `/ui/rules/new` and `/ui/rules/edit?name=…`, a form per rule whose JSON is
 * kept in sync both ways by placement/builder/builder.js; pickers are filled from the portal's
 * metadata (server/rules/metadata.ts). Saving puts the rule in the portal's map by name through
 * the JSON editor's validation and sealing; credentials are masked unless an admin reveals them.
 */
/** How long a builder save waits for the portal's field lists before it skips their check. */
const FIELD_LISTS_WAIT_MS = 1500;

export function ruleBuilderPage(deps: Deps, metadata?: MetadataCache): Router {
  const router = Router();
  const cache =
    metadata ?? createMetadataCache(deps.bitrix, { now: () => deps.clock.now().getTime() });

  const render = async (res: Response, name: string | undefined, reveal: boolean) => {
    const { user } = uiContext(res);
    const { map, source } = await effectiveMapWithSource(deps.db, user.memberId);
    // The default map's credentials are the operator's: never shown to a portal.
    const revealed = reveal && user.isAdmin && source === 'portal';
    const shown = revealed ? revealMap(map, deps.box) : maskMap(map, deps.box);
    const found = name === undefined ? undefined : shown.rules.find((r) => r.name === name);
    const rule: Rule | typeof NEW_RULE = found ?? NEW_RULE;
    const t = res.locals.t as (k: MessageKey) => string;
    const u = res.locals.u as (p: string, q?: Record<string, string>) => string;
    res.status(name !== undefined && !found ? 404 : 200).render('ui/rule-builder', {
      nav: 'rules',
      // A reader (not an admin) sees the rule, edits nothing: "Rule", not "Edit rule".
      title:
        name === undefined ? t('rb.titleNew') : t(user.isAdmin ? 'rb.titleEdit' : 'rb.titleView'),
      notFound: name !== undefined && !found,
      name: found ? found.name : '',
      // Where the rule is in the map: deleting it names its place, as the table does.
      at: found ? shown.rules.indexOf(found) : -1,
      revealed,
      tests: found ? await listTestSends(deps.db, uiContext(res).portal.id, found.name) : [],
      // In a <script type="application/json">: no `<` may close it early.
      data: JSON.stringify({
        rule,
        original: found ? found.name : '',
        admin: user.isAdmin,
        events: triggerEvents(deps, res, rule),
        // Which message channels this server can send through, and whether the portal has an
        // alert chat: a step type that would fail every time says so as it is picked.
        channels: {
          ...serverChannels(deps.config),
          portalChat: (await portalStepChat(deps.db, user.memberId)) !== null,
        },
        strings: scriptStrings(t),
        csrf: res.locals.csrfToken as string,
        urls: {
          metadata: u('/ui/rules/builder/metadata'),
          save: u('/ui/rules/builder/save'),
          dryRun: u('/ui/rules/builder/dry-run'),
          send: u('/ui/rules/builder/send-step'),
          edit: u('/ui/rules/edit'),
        },
      }).replace(/</g, '\\u003c'),
    });
  };

  router.get('/ui/rules/new', async (_req, res) => render(res, undefined, false));
  router.get('/ui/rules/edit', async (req, res) =>
    render(res, String(req.query.name ?? ''), false),
  );
  router.post('/ui/rules/edit/reveal', requireAdmin, csrfProtection, async (req, res) =>
    render(res, String(body(req).name ?? ''), true),
  );

  router.get('/ui/rules/builder/metadata', async (req, res) => {
    const item = req.query.item === undefined ? undefined : Number(req.query.item);
    if (item !== undefined && !isItemType(item)) {
      res.status(400).json({ error: 'item' });
      return;
    }
    try {
      const portal = uiContext(res).portal;
      res.json(item === undefined ? await cache.get(portal) : await cache.item(portal, item));
    } catch (e) {
      deps.logger.warn({ err: (e as Error).message }, 'rule builder metadata not loaded');
      res.status(502).json({ error: 'metadata' });
    }
  });

  router.post('/ui/rules/builder/save', requireAdmin, csrfProtection, async (req, res) => {
    const { user, portal } = uiContext(res);
    let rule: unknown;
    try {
      rule = JSON.parse(String(body(req).rule ?? ''));
    } catch (e) {
      res.status(400).json({ errors: [{ path: '$', message: (e as Error).message }] });
      return;
    }
    const { map } = await effectiveMapWithSource(deps.db, user.memberId);
    const original = String(body(req).original ?? '');
    // A new rule (no original), or one renamed, never takes the name of another rule: said
    // next to the name, not as a clash at the other rule's path.
    const name = (rule as { name?: unknown } | null)?.name;
    const other =
      typeof name === 'string' && name.trim() !== original
        ? map.rules.find((r) => r.name !== original && ruleNameKey(r.name) === ruleNameKey(name))
        : undefined;
    if (other) {
      const recased = other.name !== (name as string).trim();
      const message = `a rule named ${JSON.stringify(other.name)} already exists${recased ? ' (names that differ only in capitals count as one)' : ''}; open it from the rules page to change it, or choose another name`;
      // With what else the rule is refused for, checked on its own: said only after the name
      // was changed, the admin met the rest a round later (an e-mail step without To).
      const own = validateEventMap({ rules: [rule] });
      const rest = own.ok
        ? []
        : relativeErrors(own.errors, 0, user.lang).filter((e) => !e.path.startsWith('$.name'));
      res.status(400).json({
        errors: [{ path: '$.name', message: translateMessage(message, user.lang) }, ...rest],
      });
      return;
    }
    const shown = maskMap(map, deps.box);
    const { map: next, index } = withRule(shown, rule, original);
    // Another rule saved before a check it fails does not stop this one: said after the save.
    const checked = validateKeepingOld(next, shown, index);
    const v = checked.ok
      ? withScopeErrors(checked.map, grantedScopes(deps.manifest.scopes, portal.scope))
      : checked;
    // What each step of the form was stored as: a renamed step keeps its credentials.
    const renamed = v.ok
      ? {
          from: original,
          to: v.map.rules[index]!.name,
          steps: stepOrigins(body(req).steps),
          headers: stepOrigins(body(req).headers),
        }
      : undefined;
    const sealed = v.ok ? await saveMapSealed(deps, user.memberId, v.map, { renamed }) : v;
    if (!sealed.ok) {
      res.status(400).json({ errors: relativeErrors(sealed.errors, index, user.lang) });
      return;
    }
    const saved = maskMap(sealed.map, deps.box).rules[index]!;
    deps.logger.info({ memberId: user.memberId, rule: saved.name }, 'rule saved from the builder');
    // What the rules page warns about this rule (an event not bound, an SLA shorter than the
    // first read…): said at once, so a saved rule that cannot fire does not look finished.
    const bound = portalEvents(portal);
    // Fields the portal's records lack (a typo in a condition or a template), where the
    // builder's metadata is at hand: the page loaded it, so it is usually cached.
    const meta = await within(cache.get(portal), FIELD_LISTS_WAIT_MS);
    const warnings = checkMap(sealed.map, {
      boundEvents: bound.length > 0 ? bound : undefined,
      settleMs: deps.config.worker.settleMs,
      stepTimeoutMaxMs: deps.config.worker.stepTimeoutMaxMs,
      channels: serverChannels(deps.config),
      portalChat: (await portalStepChat(deps.db, user.memberId)) !== null,
    })
      // This rule's, and the line saying there are more same-field pairs than listed (the
      // saved rule's own may be among them).
      .filter((w) => w.rules.includes(saved.name) || w.rules.length === 0)
      .concat(ruleFieldWarnings(saved, meta))
      .concat(savedBeforeChecks(maskMap(sealed.map, deps.box)))
      .map((w) => translateMessage(w.message, user.lang));
    res.json({ ok: true, rule: saved, warnings });
  });

  router.use(tryRoutes(deps, cache));
  return router;
}
