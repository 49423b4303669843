import { Router } from 'express';
import { safeEqual } from '../lib/crypto.js';
import type { Deps } from '../deps.js';
import { statusFigures } from '../../db/stores/events.js';
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

async function refreshGauges(deps: Deps): Promise<void> {
  const now = deps.clock.now();
  const total = await statusFigures(deps.db, now);
  deps.metrics.backlog.reset();
  deps.metrics.backlog.set({ portal: 'all' }, total.backlog);
  deps.metrics.oldestPendingSeconds.set(total.oldestPendingSeconds);
  for (const p of await listPortals(deps.db)) {
    const f = await statusFigures(deps.db, now, p.id);
    deps.metrics.backlog.set({ portal: p.member_id }, f.backlog);
  }
  deps.metrics.destinationWaiting.reset();
  for (const d of await openDestinations(deps.db)) {
    deps.metrics.destinationWaiting.set({ destination: d.key }, d.waiting);
  }
}
