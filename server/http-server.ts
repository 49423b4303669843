import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Express, Router } from 'express';

export type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A handler that answers one path without Express (the event intake hot path). */
export interface FastRoute {
  readonly method: 'POST';
  readonly path: string;
  handle: RequestListener;
}

/** What the server serves: Express routers, and the fast routes answered before Express. */
export interface Parts {
  readonly routes: ReadonlyArray<Router>;
  readonly fast: ReadonlyArray<FastRoute>;
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

/** How long a connection refused for a malformed request may go on sending before it is cut. */
const CLIENT_ERROR_LINGER_MS = 2_000;

const CLIENT_ERROR_STATUS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/**
 * Answers a request Node's parser refused (headers over 16 KB, a malformed request line…)
 * and closes the connection gracefully. Node's default writes the answer and destroys the
 * socket at once; the rest of the request body then arrives at a closed socket, the kernel
 * answers it with a reset, and a client that had not read the answer yet gets ECONNRESET
 * instead of the 431 (one reset in the hostile barrage of test/reliability/). Here the answer goes
 * out with `Connection: close`, our side half-closes, and whatever the client still sends is read
 * and dropped until it closes too (or for at most CLIENT_ERROR_LINGER_MS).
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (socket.destroyed || lingering.has(socket)) return;
  lingering.add(socket);
  // A response of this connection already on the wire cannot be followed by another one.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? '400 Bad Request';
  socket.on('error', () => {
    /* the client went away while we lingered */
  });
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.resume();
  const cut = setTimeout(() => socket.destroy(), CLIENT_ERROR_LINGER_MS);
  cut.unref();
  socket.once('close', () => clearTimeout(cut));
}

const lingering = new WeakSet<Duplex>();

/**
 * How long one request may take to arrive, head and body (Node's default is 5 minutes).
 * Bitrix24's deliveries and the app's forms arrive in well under a second; a stranger
 * sending a body a byte at a time would otherwise hold a connection and its buffers that
 * long. Node checks it every `checkIntervalMs`, so a request is cut within their sum.
 */
export const REQUEST_TIMEOUT_MS = 30_000;

export function createHttpServer(
  listener: RequestListener,
  opts: { requestTimeoutMs?: number; checkIntervalMs?: number } = {},
): http.Server {
  const server = http.createServer(
    {
      keepAliveTimeout: 65_000,
      requestTimeout: opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: opts.checkIntervalMs ?? 5_000,
    },
    listener,
  );
  server.headersTimeout = Math.min(66_000, opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS);
  server.on('clientError', answerClientError);
  return server;
}
