import { Router } from 'express';
import type { Deps } from '../deps.js';
import { storageFailingSince } from '../intake/storage-health.js';

/**
 * `GET /healthz`: 200 with JSON while the database answers and takes writes; 503 when it
 * does not answer, or when it refused the last write (locked beyond the busy timeout, disk
 * full: the intake answers 503 meanwhile).
 */
export function healthRoutes(deps: Deps): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const started = Date.now();
    try {
      await deps.db.raw('select 1');
    } catch (e) {
      deps.logger.error({ err: e }, 'health check: database did not answer');
      res.status(503).json({ status: 'error', database: 'unavailable' });
      return;
    }
    const failing = await storageFailingSince(deps.metrics);
    res.status(failing ? 503 : 200).json({
      status: failing ? 'error' : 'ok',
      database: 'ok',
      writes: failing ? 'failing' : 'ok',
      ...(failing ? { lastWriteFailure: failing.toISOString() } : {}),
      dbMs: Date.now() - started,
      version: deps.manifest.version,
    });
  });
  return router;
}
