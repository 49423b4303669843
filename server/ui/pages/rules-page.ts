import { Router, type Response } from 'express';
import type { Deps } from '../../deps.js';
import { entityOf } from '../../intake/entity.js';
import { createEntityReader } from '../../processing/entity-reader.js';
import { checkMap, type MapWarning } from '../../rules/check-map.js';
import { dryRun, type DryRunRule } from '../../rules/dry-run.js';
import { relatedToLoad } from '../../rules/needs.js';
import { withScopeErrors } from '../../rules/scopes.js';
import { grantedScopes } from '../../bitrix/scopes.js';
import { validateEventMap, type MapError } from '../../rules/validate.js';
import { portalEvents } from '../../../db/stores/portals.js';
import { getSnapshot } from '../../../db/stores/processing.js';
import { saveMapSealed } from '../../rules/saved-map.js';
import { maskMap, revealMap } from '../../rules/secret-fields.js';
import { effectiveMapWithSource } from '../../../db/stores/rules.js';
import { csrfProtection, requireAdmin, uiContext } from '../context.js';
import { maskForView } from '../mask-view.js';

interface RulesView {
  text: string;
  errors: MapError[];
  warnings: MapWarning[];
  saved: boolean;
  /** An admin asked to see the secrets in clear. */
  revealed: boolean;
  dry?: { event: string; id: string; error?: string; results?: DryRunRule[] };
}

/**
 * The event map editor: validation with JSON paths, checkMap warnings, save, export, dry run.
 * Credentials (secret-fields.ts) are masked on the page, in the export and in dry runs; an
 * admin may ask to see them (a POST, so the clear text is never in a URL or a link).
 */
export function rulesPage(deps: Deps): Router {
  const router = Router();
  const bound = (res: Response) => {
    const events = portalEvents(uiContext(res).portal);
    return events.length > 0 ? events : undefined;
  };
  const render = async (res: Response, view: Partial<RulesView>) => {
    const { map, source } = await effectiveMapWithSource(deps.db, uiContext(res).user.memberId);
    const revealed = view.revealed === true && uiContext(res).user.isAdmin;
    const shown = revealed ? revealMap(map, deps.box) : maskMap(map, deps.box);
    res.render('ui/rules', {
      nav: 'rules',
      source,
      revealed,
      text: view.text ?? JSON.stringify(shown, null, 2),
      errors: view.errors ?? [],
      warnings: view.warnings ?? checkMap(map, { boundEvents: bound(res) }),
      saved: view.saved ?? false,
      dry: view.dry,
      maskForView,
    });
  };

  router.get('/ui/rules', async (_req, res) => render(res, {}));

  const exportMap = async (res: Response, reveal: boolean) => {
    const { map } = await effectiveMapWithSource(deps.db, uiContext(res).user.memberId);
    const shown = reveal ? revealMap(map, deps.box) : maskMap(map, deps.box);
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

  router.post('/ui/rules', requireAdmin, csrfProtection, async (req, res) => {
    const text = String((req.body as Record<string, unknown>).map ?? '');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      await render(res.status(400), {
        text,
        errors: [{ path: '$', message: `not valid JSON: ${(e as Error).message}` }],
        warnings: [],
      });
      return;
    }
    const checked = validateEventMap(json);
    const v = checked.ok
      ? withScopeErrors(
          checked.map,
          grantedScopes(deps.manifest.scopes, uiContext(res).portal.scope),
        )
      : checked;
    if (!v.ok) {
      await render(res.status(400), { text, errors: v.errors, warnings: [] });
      return;
    }
    const sealed = await saveMapSealed(deps, uiContext(res).user.memberId, v.map);
    if (!sealed.ok) {
      await render(res.status(400), { text, errors: sealed.errors, warnings: [] });
      return;
    }
    await render(res, {
      text: JSON.stringify(maskMap(sealed.map, deps.box), null, 2),
      saved: true,
      warnings: checkMap(v.map, { boundEvents: bound(res) }),
    });
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
    if (!/^[A-Z0-9_]{2,64}$/.test(event) || !/^[A-Za-z0-9_-]{1,32}$/.test(id) || !type) {
      dry.error = 'Give an event name (e.g. ONCRMDEALUPDATE) and an entity id.';
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
      dry.error = maskForView((e as Error).message);
    }
    await render(res, { dry });
  });

  return router;
}
