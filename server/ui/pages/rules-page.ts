import { Router, type Request, type Response } from 'express';
import { isBitrixApiError } from '../../bitrix/errors.js';
import { within } from '../../lib/within.js';
import type { Deps } from '../../deps.js';
import { entityOf } from '../../intake/entity.js';
import { createEntityReader } from '../../processing/entity-reader.js';
import { checkMap } from '../../rules/check-map.js';
import { serverChannels } from '../../config/warnings.js';
import { portalStepChat } from '../../../db/stores/alerts.js';
import { dryRun, type DryRunRule } from '../../rules/dry-run.js';
import { relatedToLoad } from '../../rules/needs.js';
import { withScopeErrors } from '../../rules/scopes.js';
import { grantedScopes } from '../../bitrix/scopes.js';
import { savedBeforeChecks, validateKeepingOld, type MapError } from '../../rules/validate.js';
import { portalEvents } from '../../../db/stores/portals.js';
import { getSnapshot } from '../../../db/stores/processing.js';
import { saveMapSealed } from '../../rules/saved-map.js';
import { currentRuleSuccess } from '../../rules/rule-names.js';
import { maskMap, revealMap, type SealResult } from '../../rules/secret-fields.js';
import { effectiveMapWithSource } from '../../rules/map-store.js';
import { csrfProtection, requireAdmin, uiContext, type UrlBuilder } from '../context.js';
import { mapWords } from '../i18n-map.js';
import type { MessageKey } from '../i18n.js';
import { maskForView } from '../mask-view.js';
import type { MetadataCache } from '../../rules/metadata.js';
import { ruleFieldWarnings } from '../../rules/field-check.js';
import { changeMap, ruleRows, stageNames, type MapChange } from './rules-table.js';
import { RECORD_ID, RECORD_ID_NEEDED } from './rule-builder-try.js';

const DAY = 86_400_000;
/** How long the map page waits for the portal's stage names before it shows the codes. */
const STAGE_NAMES_WAIT_MS = 1500;

/** What a change from the table did, as the page says it after the redirect. */
const TABLE_CHANGES = ['deleted', 'off', 'on', 'moved'] as const;
type TableChange = (typeof TABLE_CHANGES)[number];

interface RulesView {
  text: string;
  errors: MapError[];
  saved: boolean;
  /** A change from the table was saved (the redirect after it): which one, said in words. */
  changed: boolean | TableChange;
  /** Why a change from the table was not made. */
  refused?: MessageKey;
  /** An admin asked to see the secrets in clear. */
  revealed: boolean;
  dry?: {
    event: string;
    id: string;
    error?: string;
    /** The error is the portal's answer (translated as errors are, not as messages). */
    remote?: boolean;
    results?: DryRunRule[];
  };
}

/**
 * The map page: a table of every rule in words (trigger, conditions, steps and where they
 * go, SLA, enabled, last 7 days' success from the rollups) with the map-check warnings
 * beside the rules they name; an admin turns rules on and off and moves them in place. Below
 * it, the JSON editor: validation with JSON paths, save, export, dry run. Every change goes
 * through the same validation and sealing. Credentials (secret-fields.ts) are masked on the
 * page, in the export and in dry runs; an admin may ask to see them (a POST, so the clear
 * text is never in a URL or a link).
 */
export function rulesPage(deps: Deps, metadata?: MetadataCache): Router {
  const router = Router();
  const bound = (res: Response) => {
    const events = portalEvents(uiContext(res).portal);
    return events.length > 0 ? events : undefined;
  };
  const render = async (res: Response, view: Partial<RulesView>) => {
    const { user, portal } = uiContext(res);
    const { map, source } = await effectiveMapWithSource(deps.db, user.memberId);
    // The default map's credentials are the operator's: never shown to a portal.
    const revealed = view.revealed === true && user.isAdmin && source === 'portal';
    const masked = maskMap(map, deps.box);
    const shown = revealed ? revealMap(map, deps.box) : masked;
    const now = deps.clock.now().getTime();
    const figures = await currentRuleSuccess(
      deps.db,
      portal,
      map.rules.map((r) => r.name),
      now - 7 * DAY,
      now,
    );
    // Stage names and the field lists come from the builder's metadata cache (cached per
    // portal for minutes, read within the REST budget); a slow or failing portal only leaves
    // the codes on the page and the field checks unsaid.
    const meta =
      metadata && map.rules.length > 0
        ? await within(metadata.get(portal), STAGE_NAMES_WAIT_MS)
        : undefined;
    const warnings = [
      ...checkMap(map, {
        boundEvents: bound(res),
        settleMs: deps.config.worker.settleMs,
        stepTimeoutMaxMs: deps.config.worker.stepTimeoutMaxMs,
        channels: serverChannels(deps.config),
        portalChat:
          source === 'portal' ? (await portalStepChat(deps.db, user.memberId)) !== null : undefined,
      }),
      // Read as pages show it: stored credentials are sealed objects, not what a rule holds.
      ...savedBeforeChecks(masked),
      // What the builder said at save (a field the records lack, a value a field never
      // takes, a stage left unchosen), said here too: such a rule is "on" and never matches.
      ...map.rules.flatMap((r) => ruleFieldWarnings(r, meta)),
    ];
    const errors = view.errors ?? [];
    res.render('ui/rules', {
      nav: 'rules',
      source,
      revealed,
      text: view.text ?? JSON.stringify(shown, null, 2),
      errors,
      table: ruleRows(
        masked,
        figures,
        warnings,
        mapWords(user.lang),
        meta ? stageNames(meta) : undefined,
      ),
      saved: view.saved ?? false,
      changed: view.changed ?? false,
      refused: view.refused,
      dry: view.dry,
      // The JSON editor opens where its own result (or a problem with the map) is shown.
      jsonOpen: errors.length > 0 || view.text !== undefined || revealed || view.dry !== undefined,
      maskForView,
    });
  };

  router.get('/ui/rules', async (req, res) => {
    const said = String(req.query.changed ?? '');
    const changed = (TABLE_CHANGES as readonly string[]).includes(said)
      ? (said as TableChange)
      : said === '1';
    await render(res, { changed });
  });

  const exportMap = async (res: Response, reveal: boolean) => {
    const { map, source } = await effectiveMapWithSource(deps.db, uiContext(res).user.memberId);
    const shown = reveal && source === 'portal' ? revealMap(map, deps.box) : maskMap(map, deps.box);
    res.set('Content-Disposition', 'attachment; filename="b24hooks-rules.json"');
    res.type('application/json').send(JSON.stringify(shown, null, 2));
  };
  router.get('/ui/rules/export', requireAdmin, async (_req, res) => exportMap(res, false));
  router.post('/ui/rules/export', requireAdmin, csrfProtection, async (_req, res) =>
    exportMap(res, true),
  );
  router.post('/ui/rules/reveal', requireAdmin, csrfProtection, async (_req, res) =>
    render(res, { revealed: true }),
  );

  /** The JSON editor's checks for a map as written (credentials in clear, masked or `$env`). */
  const validateAndSave = async (res: Response, json: unknown): Promise<SealResult> => {
    // A rule saved before a check it fails, left as it was, does not stop saving the others.
    const { map: stored } = await effectiveMapWithSource(deps.db, uiContext(res).user.memberId);
    const checked = validateKeepingOld(json, maskMap(stored, deps.box));
    const v = checked.ok
      ? withScopeErrors(
          checked.map,
          grantedScopes(deps.manifest.scopes, uiContext(res).portal.scope),
        )
      : checked;
    if (!v.ok) return v;
    return saveMapSealed(deps, uiContext(res).user.memberId, v.map, { inPlace: true });
  };

  router.post('/ui/rules', requireAdmin, csrfProtection, async (req, res) => {
    const text = String((req.body as Record<string, unknown>).map ?? '');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      await render(res.status(400), {
        text,
        // The parser's words quoted: data to a Russian page, not phrases to translate
        // ("Unexpected token … is not valid JSON" read "Unожидается token … = not valid JSON").
        errors: [{ path: '$', message: `not valid JSON: ${JSON.stringify((e as Error).message)}` }],
      });
      return;
    }
    const sealed = await validateAndSave(res, json);
    if (!sealed.ok) {
      await render(res.status(400), { text, errors: sealed.errors });
      return;
    }
    await render(res, {
      text: JSON.stringify(maskMap(sealed.map, deps.box), null, 2),
      saved: true,
    });
  });

  /**
   * A change from the table, made to the map as the JSON editor shows it (credentials masked,
   * so sealing keeps what is stored) and saved through the same checks; then back to the
   * table (post/redirect/get), at the rule's row.
   */
  const changeFromTable =
    (parse: (body: Record<string, unknown>) => MapChange | undefined) =>
    async (req: Request, res: Response) => {
      const change = parse(req.body as Record<string, unknown>);
      if (!change) {
        await render(res.status(400), { refused: 'map.badForm' });
        return;
      }
      const { map } = await effectiveMapWithSource(deps.db, uiContext(res).user.memberId);
      const changed = changeMap(maskMap(map, deps.box), change);
      if (!changed.ok) {
        await render(res.status(changed.reason === 'map.stale' ? 409 : 404), {
          refused: changed.reason,
        });
        return;
      }
      const saved = await validateAndSave(res, changed.map);
      if (!saved.ok) {
        await render(res.status(400), { errors: saved.errors });
        return;
      }
      // Said as what it was ("The rule was turned off"), not "The map was saved".
      const said: TableChange =
        change.kind === 'delete'
          ? 'deleted'
          : change.kind === 'move'
            ? 'moved'
            : change.enabled
              ? 'on'
              : 'off';
      const back = (res.locals.u as UrlBuilder)('/ui/rules', { changed: said });
      res.redirect(303, changed.map.rules.length > 0 ? `${back}#rule-${changed.index + 1}` : back);
    };
  const ruleName = (body: Record<string, unknown>) =>
    typeof body.name === 'string' && body.name.length > 0 ? body.name : undefined;

  router.post(
    '/ui/rules/toggle',
    requireAdmin,
    csrfProtection,
    changeFromTable((body) => {
      const name = ruleName(body);
      if (!name || (body.enabled !== '0' && body.enabled !== '1')) return undefined;
      return { kind: 'toggle', name, enabled: body.enabled === '1' };
    }),
  );
  router.post(
    '/ui/rules/move',
    requireAdmin,
    csrfProtection,
    changeFromTable((body) => {
      const name = ruleName(body);
      const at = typeof body.at === 'string' && /^\d{1,6}$/.test(body.at) ? Number(body.at) : -1;
      if (!name || at < 0 || (body.dir !== 'up' && body.dir !== 'down')) return undefined;
      return { kind: 'move', name, at, dir: body.dir };
    }),
  );

  /**
   * Deleting a rule: the table's button asks first (a page that names the rule and what stays:
   * the events it ran for and their steps), then the same change as the table's others.
   */
  const deletion = (body: Record<string, unknown>) => {
    const name = ruleName(body);
    const at = typeof body.at === 'string' && /^\d{1,6}$/.test(body.at) ? Number(body.at) : -1;
    return name && at >= 0 ? { kind: 'delete' as const, name, at } : undefined;
  };
  const deleteRule = changeFromTable(deletion);
  // The question is a page of its own (GET): rendered as the answer to a POST, Back to it
  // after the deletion was a form to post again, which Chrome shows in the frame as an
  // error page with no way out but reopening the app.
  router.get('/ui/rules/delete', requireAdmin, async (req, res) => {
    const query = req.query as Record<string, unknown>;
    const change = deletion(query);
    if (!change) {
      await render(res.status(400), { refused: 'map.badForm' });
      return;
    }
    const { map } = await effectiveMapWithSource(deps.db, uiContext(res).user.memberId);
    if (!map.rules.some((r) => r.name === change.name)) {
      // Deleted already (Back to this page after it): said, not asked again.
      await render(res.status(404), { refused: 'map.noRule' });
      return;
    }
    res.render('ui/rule-delete', {
      nav: 'rules',
      name: change.name,
      at: change.at,
      fromBuilder: query.from === 'builder',
    });
  });
  router.post('/ui/rules/delete', requireAdmin, csrfProtection, async (req, res) => {
    const body = req.body as Record<string, unknown>;
    if (body.confirm === '1') return deleteRule(req, res);
    // A page loaded before the question became a GET: sent there.
    const change = deletion(body);
    if (!change) {
      await render(res.status(400), { refused: 'map.badForm' });
      return;
    }
    const ask = (res.locals.u as UrlBuilder)('/ui/rules/delete', {
      name: change.name,
      at: String(change.at),
      ...(body.from === 'builder' ? { from: 'builder' } : {}),
    });
    res.redirect(303, ask);
  });

  router.post('/ui/rules/dry-run', requireAdmin, csrfProtection, async (req, res) => {
    const { portal, user } = uiContext(res);
    const body = req.body as Record<string, unknown>;
    const event = String(body.event ?? '')
      .trim()
      .toUpperCase();
    const id = String(body.id ?? '').trim();
    const dry: RulesView['dry'] = { event, id };
    const { type } = entityOf(event, { FIELDS: { ID: id } });
    if (!/^[A-Z0-9_]{2,64}$/.test(event) || !RECORD_ID.test(id) || !type) {
      dry.error = RECORD_ID_NEEDED;
      await render(res.status(400), { dry });
      return;
    }
    try {
      const { map } = await effectiveMapWithSource(deps.db, user.memberId);
      const reader = createEntityReader(deps);
      const now = deps.clock.now().getTime();
      const entity = /DELETE$/.test(event) ? { ID: id } : await reader.read(portal, type, id, now);
      if (entity === null) {
        dry.error = `${type} ${id} does not exist on the portal.`;
      } else {
        const related: Record<string, Record<string, unknown> | undefined> = {};
        for (const root of relatedToLoad(map.rules.filter((r) => r.on.includes(event)))) {
          const rid = entity?.[`${root.toUpperCase()}_ID`];
          if (rid && rid !== '0') {
            related[root] = (await reader.read(portal, root, String(rid), now)) ?? undefined;
          }
        }
        // Credentials are never opened for a dry run: steps show them masked.
        dry.results = dryRun(maskMap(map, deps.box), {
          event: { name: event, memberId: user.memberId, entityType: type, entityId: id },
          entity: entity ?? undefined,
          previous: await getSnapshot(deps.db, portal.id, type, id),
          related,
          portal: { domain: portal.domain, memberId: user.memberId },
        });
      }
    } catch (e) {
      // What the portal answered stays as it came (only the app's words around it are
      // translated); the app's own messages are translated as messages.
      dry.error = maskForView((e as Error).message);
      dry.remote = isBitrixApiError(e);
    }
    await render(res, { dry });
  });

  return router;
}
