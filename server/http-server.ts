import http from 'node:http';
import type { Express } from 'express';

export type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A handler that answers one path without Express (the event intake hot path). */
export interface FastRoute {
  readonly method: 'POST';
  readonly path: string;
  handle: RequestListener;
}

/**
 * Bitrix24 posts every event to one URL and deprioritises slow receivers, so that path is
 * answered by a plain node:http handler; Express (about 10× the per-request CPU) serves the
 * pages and everything else.
 */
export function createRequestListener(
  app: Express,
  fast: readonly FastRoute[] = [],
): RequestListener {
  return (req, res) => {
    if (fast.length > 0 && req.url) {
      const q = req.url.indexOf('?');
      const pathname = q === -1 ? req.url : req.url.slice(0, q);
      for (const route of fast) {
        if (pathname === route.path && req.method === route.method) {
          route.handle(req, res);
          return;
        }
      }
    }
    app(req, res);
  };
}

export function createHttpServer(listener: RequestListener): http.Server {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, listener);
  server.headersTimeout = 66_000;
  return server;
}
