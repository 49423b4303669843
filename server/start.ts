import net from 'node:net';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './routes/app.js';
import type { Deps } from './deps.js';
import { createAccessLog } from './lib/access-log.js';
import { AppError } from './lib/errors.js';
import {
  createHttpServer,
  createRequestListener,
  type Parts,
  type RequestListener,
} from './http-server.js';

export interface RunningServer {
  readonly server: http.Server;
  /** The URL the server listens on (loopback form when bound to all interfaces). */
  readonly url: string;
  /**
   * From now on every answer says `Connection: close`, so each open connection ends after its
   * next answer (the shutdown delay, while /readyz says 503).
   */
  drain(): void;
  /**
   * Stops accepting connections, answers what arrives on the open ones for CLOSE_GRACE_MS
   * (with `Connection: close`), then closes those still idle.
   */
  close(): Promise<void>;
}

/**
 * How long open connections may still bring a request after the listener closed. Closing an
 * idle keep-alive connection at once reset a request its client had just sent on it (in
 * the kernel's buffer, not read yet): neither answered nor stored, and a proxy in front
 * answers Bitrix24 502, which it does not send again.
 */
export const CLOSE_GRACE_MS = 1_000;

/** Builds the request listener from the deps: every route the app mounts is listed here. */
export function buildListener(
  deps: Deps,
  parts: Parts = { routes: [], fast: [] },
): RequestListener {
  const app = createApp(deps, parts.routes);
  const listener = createRequestListener(app, parts.fast);
  const fastRoutes = new Set(parts.fast.map((r) => `${r.method} ${r.path}`));
  const accessLog = createAccessLog(deps.logger, {
    now: () => deps.clock.now().getTime(),
    quietWhenOk: (req) => {
      if (fastRoutes.size === 0 || !req.url) return false;
      const q = req.url.indexOf('?');
      return fastRoutes.has(`${req.method} ${q === -1 ? req.url : req.url.slice(0, q)}`);
    },
  });
  return (req, res) => {
    accessLog(req, res);
    listener(req, res);
  };
}

export async function listen(
  deps: Deps,
  listener: RequestListener,
  port = deps.config.port,
  host = deps.config.host,
): Promise<RunningServer> {
  // From close() on, every answer says `Connection: close`: a client (or a proxy's upstream
  // keep-alive pool) that keeps sending on its open connection would otherwise keep the
  // server from closing, and the process answered deliveries until the hard exit timer.
  let closing = false;
  const server = createHttpServer((req, res) => {
    if (closing) res.setHeader('Connection', 'close');
    listener(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    const refused = (e: NodeJS.ErrnoException) => reject(listenRefusal(e, host, port));
    server.once('error', refused);
    server.listen(port, host, () => {
      server.off('error', refused);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    server,
    url: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${addr.port}`,
    drain: () => {
      closing = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        let sweep: NodeJS.Timeout | undefined;
        // net.Server's close: no new connections, and the open ones are left to end (http's
        // own close() would also cut the idle ones at once).
        net.Server.prototype.close.call(server, () => {
          clearTimeout(sweep);
          resolve();
        });
        const closeIdle = () => {
          server.closeIdleConnections();
          sweep = setTimeout(closeIdle, 100);
          sweep.unref();
        };
        sweep = setTimeout(closeIdle, CLOSE_GRACE_MS);
        sweep.unref();
      }),
  };
}

/**
 * A port in use or not allowed is the operator's to fix, like a bad setting: said in one line
 * with what to change (server/main.ts prints a CONFIG error without a stack).
 */
export function listenRefusal(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (e.code === 'EADDRINUSE') {
    return new AppError(
      'CONFIG',
      `cannot listen on ${where}: another program already listens there; stop it, or set PORT (and HOST) to a free address`,
      { cause: e },
    );
  }
  if (e.code === 'EACCES') {
    return new AppError(
      'CONFIG',
      `cannot listen on ${where}: not allowed for this user (ports below 1024 need privileges); set PORT to 1024 or above and put a proxy in front`,
      { cause: e },
    );
  }
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') {
    return new AppError(
      'CONFIG',
      `cannot listen on ${where}: HOST is no address of this machine, nor a name that resolves; set HOST to one of its addresses, or 0.0.0.0`,
      { cause: e },
    );
  }
  if (e.code === 'EADDRNOTAVAIL') {
    return new AppError(
      'CONFIG',
      `cannot listen on ${where}: no network interface of this machine has that address; set HOST to one it has, or 0.0.0.0`,
      { cause: e },
    );
  }
  return e;
}
