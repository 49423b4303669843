import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import qs from 'qs';
import type { HttpResponseSummary } from './types.js';

const MAX_BODY = 10 * 1024 * 1024;

export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses a PHP-style query or form string (`filter[>ID]=5`) into nested objects, as PHP's
 * `parse_str` does for the core (CORE classes/general/rest.php reads `$_REQUEST`). */
export function parseForm(raw: string): Record<string, unknown> {
  return qs.parse(raw, { depth: 10, arrayLimit: 200, parameterLimit: 10000 }) as Record<
    string,
    unknown
  >;
}

/**
 * Query-string params merged with form or JSON body params (the body wins): REST accepts GET, form
 * and JSON POST alike (DOCS:settings/how-to-call-rest-api/general-principles.md). Which side wins
 * on a clash is a guess.
 */
export function parseRequestParams(
  req: IncomingMessage,
  url: URL,
  body: string,
): Record<string, unknown> {
  const fromQuery = parseForm(url.search.replace(/^\?/, ''));
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  let fromBody: Record<string, unknown> = {};
  if (body.length > 0) {
    if (type.includes('application/json')) {
      const parsed: unknown = JSON.parse(body);
      if (isRecord(parsed)) fromBody = parsed;
    } else if (type.includes('application/x-www-form-urlencoded') || type === '') {
      fromBody = parseForm(body);
    }
  }
  return { ...fromQuery, ...fromBody };
}

export function sendJson(res: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Access-Control-Allow-Origin': '*',
  });
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  contentType: string,
  text: string,
): void {
  res.writeHead(status, {
    'Content-Type': `${contentType}; charset=utf-8`,
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

/** Starts listening on 127.0.0.1 and resolves with the bound port. */
export function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Closes a listener and every socket it holds, keep-alive ones included. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export interface PostOptions {
  url: string;
  body: string;
  headers?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Requests in flight per shared signal, and the one abort listener that ends them all. */
const inFlight = new WeakMap<AbortSignal, Set<http.ClientRequest>>();

/**
 * Ties `req` to `signal` without a listener per request: a portal's one signal given to
 * every delivery made Node add an abort listener per request in flight (the
 * MaxListenersExceededWarning of `npm run bench -- process`). Returns the untie.
 */
function tieToSignal(signal: AbortSignal, req: http.ClientRequest): () => void {
  if (signal.aborted) {
    req.destroy(new Error('aborted'));
    return () => undefined;
  }
  let set = inFlight.get(signal);
  if (!set) {
    const mine = new Set<http.ClientRequest>();
    set = mine;
    inFlight.set(signal, mine);
    signal.addEventListener(
      'abort',
      () => {
        for (const r of mine) r.destroy(new Error('aborted'));
        mine.clear();
      },
      { once: true },
    );
  }
  set.add(req);
  const tied = set;
  return () => tied.delete(req);
}

/**
 * One POST on a fresh connection (no agent, so nothing stays open after the answer).
 * Rejects on network errors, on timeout, and when `signal` aborts.
 */
export function postOnce(options: PostOptions): Promise<HttpResponseSummary> {
  return new Promise((resolve, reject) => {
    const target = new URL(options.url);
    const transport = target.protocol === 'https:' ? https : http;
    const req = transport.request(
      target,
      {
        method: 'POST',
        agent: false,
        headers: { ...options.headers, 'Content-Length': Buffer.byteLength(options.body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          untie();
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            headers: res.headers,
          });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          untie();
          reject(err);
        });
      },
    );
    const untie = options.signal ? tieToSignal(options.signal, req) : () => undefined;
    const timer = setTimeout(() => {
      req.destroy(new Error(`timeout after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      untie();
      reject(err);
    });
    req.end(options.body);
  });
}
