import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SunkRequest {
  method: string;
  /** Path and query. */
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface SinkReply {
  status?: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON. */
  body?: unknown;
  /** Answer this late (for timeouts); the socket is destroyed by `close()`. */
  delayMs?: number;
}

export type SinkHandler = (req: SunkRequest) => SinkReply | Promise<SinkReply>;

export interface HttpSink {
  /** `http://127.0.0.1:<port>` */
  url: string;
  requests: SunkRequest[];
  /** Replaces how the sink answers (default: 200 `{"ok": true}`). */
  handle(handler: SinkHandler): void;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1:0 that records every request and answers as told. */
export async function startHttpSink(handler?: SinkHandler): Promise<HttpSink> {
  const requests: SunkRequest[] = [];
  let current: SinkHandler = handler ?? (() => ({ body: { ok: true } }));
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const sunk: SunkRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(sunk);
      void Promise.resolve(current(sunk)).then((reply) => {
        const send = () => {
          const isText = typeof reply.body === 'string';
          const payload =
            reply.body === undefined
              ? ''
              : isText
                ? (reply.body as string)
                : JSON.stringify(reply.body);
          res.writeHead(reply.status ?? 200, {
            ...(reply.body !== undefined && !isText ? { 'content-type': 'application/json' } : {}),
            ...reply.headers,
          });
          res.end(payload);
        };
        if (reply.delayMs) {
          const t = setTimeout(() => {
            timers.delete(t);
            send();
          }, reply.delayMs);
          timers.add(t);
        } else send();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    handle(h) {
      current = h;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
