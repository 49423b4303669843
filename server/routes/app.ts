import path from 'node:path';
import express, { type Express } from 'express';
import type { Deps } from '../deps.js';
import { errorHandler, notFound } from './errors.js';
import { healthRoutes } from './health.js';
import { metricsRoutes } from './metrics.js';

/**
 * The Express application for everything but the event intake hot path (see
 * http-server.ts). No I/O happens here; routes are listed explicitly.
 */
export function createApp(deps: Deps, extraRoutes: ReadonlyArray<express.Router> = []): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.trustProxy);
  app.set('view engine', 'ejs');
  app.set('views', path.join(deps.root, 'views'));
  // Templates change only with a new release, and a release restarts the server. Express
  // caches them only under NODE_ENV=production (the Docker image sets it; `npm start` does
  // not): without it every page view read its templates from disk and compiled them again,
  // about an eighth of a dashboard view's CPU (test/bench/README.md).
  app.set('view cache', true);
  app.use(
    '/assets',
    express.static(path.join(deps.root, 'placement'), { maxAge: '1h', index: false }),
  );
  app.use(healthRoutes(deps));
  app.use(metricsRoutes(deps));
  for (const r of extraRoutes) app.use(r);
  app.use(notFound);
  app.use(errorHandler(deps));
  return app;
}
