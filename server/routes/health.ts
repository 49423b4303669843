import { Router } from 'express';
import type { Deps } from '../deps.js';

/** `GET /healthz`: 200 with JSON while the database answers, 503 otherwise. */
export function healthRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const started = Date.now();
    try {
      await deps.db.raw('select 1');
      res.json({
        status: 'ok',
        database: 'ok',
        dbMs: Date.now() - started,
        version: deps.manifest.version,
      });
    } catch (e) {
      deps.logger.error({ err: e }, 'health check: database did not answer');
      res.status(503).json({ status: 'error', database: 'unavailable' });
    }
  });
  return router;
}
