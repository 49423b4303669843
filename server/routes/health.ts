import { Router } from 'express';
import { migrations } from '../../db/migrations/index.js';
import { touchProbe } from '../../db/stores/probes.js';
import type { Deps } from '../deps.js';
import { storageFailingSince } from '../metrics.js';
import { answeredOnPurpose } from '../lib/access-log.js';
import { toError } from '../lib/errors.js';

/** A probe write at most this often: a proxy polling /readyz never adds load of its own. */
const READY_CACHE_MS = 1000;

interface Readiness {
  ready: boolean;
  database: 'ok' | 'unavailable' | 'read-only';
  migrations: 'done' | 'pending';
}

/** Whether the last of our migrations is recorded (knex's own table). */
async function migrationsDone(deps: Deps): Promise<boolean> {
  const last = migrations[migrations.length - 1]?.name;
  const row = (await deps.db('knex_migrations').where({ name: last }).first()) as unknown;
  return row !== undefined;
}

/**
 * `GET /healthz`: the process is alive and the database answers — 200 with JSON while the
 * database answers and takes writes; 503 when it does not answer, or when it refused the
 * last write (locked beyond the busy timeout, disk full: the intake answers 503 meanwhile).
 *
 * `GET /readyz`: this instance should get traffic — the database takes a write now, every
 * migration is applied, and the process is not shutting down (503 from SIGTERM on, while
 * requests are still served, so a load balancer takes it out before it closes).
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

  let migrated = false;
  let last: { at: number; value: Promise<Readiness> } | undefined;
  async function check(): Promise<Readiness> {
    try {
      migrated ||= await migrationsDone(deps);
    } catch (e) {
      deps.logger.warn({ err: toError(e).message }, 'readiness: database did not answer');
      return { ready: false, database: 'unavailable', migrations: 'pending' };
    }
    try {
      await touchProbe(deps.db, 'readyz', Date.now());
    } catch (e) {
      deps.logger.warn({ err: toError(e).message }, 'readiness: database refused a write');
      return { ready: false, database: 'read-only', migrations: migrated ? 'done' : 'pending' };
    }
    return { ready: migrated, database: 'ok', migrations: migrated ? 'done' : 'pending' };
  }
  router.get('/readyz', async (_req, res) => {
    if (deps.lifecycle.stopping) {
      answeredOnPurpose(res);
      res.status(503).json({ status: 'stopping' });
      return;
    }
    const now = Date.now();
    if (!last || now - last.at >= READY_CACHE_MS) last = { at: now, value: check() };
    const r = await last.value;
    res.status(r.ready ? 200 : 503).json({
      status: r.ready ? 'ok' : 'error',
      database: r.database,
      migrations: r.migrations,
      version: deps.manifest.version,
    });
  });
  return router;
}
