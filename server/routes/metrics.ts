import { setImmediate as nextTurn } from 'node:timers/promises';
import { Router } from 'express';
import { safeEqual } from '../lib/crypto.js';
import type { Deps } from '../deps.js';
import { backlogCounts, oldestPendingAt } from '../../db/stores/rollups.js';
import { listPortalIds } from '../../db/stores/portals.js';
import { openDestinations } from '../../db/stores/destinations.js';

/** `GET /metrics` in Prometheus text format; `METRICS_TOKEN` requires a bearer token. */
export function metricsRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/metrics', async (req, res) => {
    const token = deps.config.metricsToken;
    if (token) {
      const header = req.get('authorization') ?? '';
      // The scheme's name is case-insensitive (RFC 7235 §2.1): `bearer x` is `Bearer x`.
      const given = /^bearer /i.test(header) ? header.slice(7) : '';
      if (!safeEqual(given, token)) {
        res.status(401).set('WWW-Authenticate', 'Bearer').type('text/plain').send('unauthorized\n');
        return;
      }
    }
    await refreshGauges(deps);
    res.type(deps.metrics.registry.contentType).send(await render(deps.metrics.registry));
  });
  return router;
}

/**
 * The registry's text, one metric at a time with a turn of the event loop between them.
 * `registry.metrics()` renders every series in one go: with thousands of portals (a series
 * per portal, event and status) that held the main thread, and every delivery waiting on
 * it, for the whole scrape. The text is the same (Prometheus format, metrics apart by a
 * blank line).
 */
async function render(registry: Deps['metrics']['registry']): Promise<string> {
  const parts: string[] = [];
  for (const m of registry.getMetricsAsArray()) {
    await nextTurn();
    // prom-client writes a NaN sample (the event-loop lag's mean before its first reading)
    // as `Nan`; the text format spells it `NaN`, and strict parsers refuse anything else.
    parts.push((await registry.getSingleMetricAsString(m.name)).replace(/ Nan$/gm, ' NaN'));
  }
  return `${parts.join('\n\n')}\n`;
}

/**
 * Backlog gauges from the rollups: a scrape never scans events. Everything is read first and
 * the gauges are then set without a pause, so a scrape rendering meanwhile never sees them
 * half filled.
 */
async function refreshGauges(deps: Deps): Promise<void> {
  const now = deps.clock.now().getTime();
  // Counts per portal, and the oldest pending event of all of them: the per-portal oldest
  // (four queries a portal with a backlog) is not a metric. With 5,000 portals in backlog
  // those 20,000 queries, each waiting its turn behind the intake's and the worker's
  // writes, held a scrape for two minutes.
  const byPortal = await backlogCounts(deps.db);
  const oldestAt = await oldestPendingAt(deps.db);
  const portals = await listPortalIds(deps.db);
  const destinations = await openDestinations(deps.db);
  let total = 0;
  for (const n of byPortal.values()) if (n > 0) total += n;
  deps.metrics.backlog.reset();
  deps.metrics.backlog.set({ portal: 'all' }, total);
  const oldest = Math.min(now, oldestAt ?? now);
  deps.metrics.oldestPendingSeconds.set(Math.max(0, Math.floor((now - oldest) / 1000)));
  for (const p of portals) {
    deps.metrics.backlog.set({ portal: p.memberId }, Math.max(0, byPortal.get(p.id) ?? 0));
  }
  deps.metrics.destinationWaiting.reset();
  for (const d of destinations) {
    deps.metrics.destinationWaiting.set({ destination: d.key }, d.waiting);
  }
}
