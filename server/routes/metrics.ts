import { Router } from 'express';
import { safeEqual } from '../lib/crypto.js';
import type { Deps } from '../deps.js';
import { backlogByPortal } from '../../db/stores/alerts.js';
import { listPortals } from '../../db/stores/portals.js';
import { openDestinations } from '../../db/stores/destinations.js';

/** `GET /metrics` in Prometheus text format; `METRICS_TOKEN` requires a bearer token. */
export function metricsRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/metrics', async (req, res) => {
    const token = deps.config.metricsToken;
    if (token) {
      const header = req.get('authorization') ?? '';
      const given = header.startsWith('Bearer ') ? header.slice(7) : '';
      if (!safeEqual(given, token)) {
        res.status(401).set('WWW-Authenticate', 'Bearer').type('text/plain').send('unauthorized\n');
        return;
      }
    }
    await refreshGauges(deps);
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  return router;
}

/** Backlog gauges from the rollups: a scrape never scans events. */
async function refreshGauges(deps: Deps): Promise<void> {
  const now = deps.clock.now().getTime();
  const rows = await backlogByPortal(deps.db);
  const byPortal = new Map(rows.map((r) => [r.portalId, r.backlog]));
  deps.metrics.backlog.reset();
  deps.metrics.backlog.set(
    { portal: 'all' },
    rows.reduce((s, r) => s + r.backlog, 0),
  );
  const oldest = rows.length ? Math.min(...rows.map((r) => r.oldestAt)) : now;
  deps.metrics.oldestPendingSeconds.set(Math.max(0, Math.floor((now - oldest) / 1000)));
  for (const p of await listPortals(deps.db)) {
    deps.metrics.backlog.set({ portal: p.member_id }, byPortal.get(p.id) ?? 0);
  }
  deps.metrics.destinationWaiting.reset();
  for (const d of await openDestinations(deps.db)) {
    deps.metrics.destinationWaiting.set({ destination: d.key }, d.waiting);
  }
}
