import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { pinoHttp } from 'pino-http';
import { createLogBudget } from './log-budget.js';
import type { Logger } from './logger.js';

/** Query parameters whose values never reach the access log. */
const SECRET_PARAM =
  /(token|auth|refresh|secret|password|passwd|signature|sig|key|code|session|^s$|sid$)/i;

/**
 * The request target with every secret-looking query value replaced: the UI's session
 * token (`?s=`), `AUTH_ID`, `REFRESH_ID`, `auth[...]`, `application_token`, OAuth `code`,
 * the frame's `APP_SID`.
 */
export function redactUrl(url: string | undefined): string {
  if (!url) return '';
  const q = url.indexOf('?');
  if (q === -1) return url;
  const parts = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      let name = pair.slice(0, eq);
      try {
        name = decodeURIComponent(name);
      } catch {
        // keep it encoded: the pattern still sees most of it
      }
      return SECRET_PARAM.test(name) ? `${pair.slice(0, eq)}=[redacted]` : pair;
    });
  return `${url.slice(0, q)}?${parts.join('&')}`;
}

/** An id a proxy sent (`X-Request-Id`), when it looks like one; else a fresh UUID. */
const REQUEST_ID = /^[\w.:-]{1,100}$/;

type RawRequest = http.IncomingMessage & { originalUrl?: string };

const expected = new WeakSet<http.ServerResponse>();

/**
 * This answer's error status is the route working as meant (`/readyz`'s 503 while the
 * process stops, polled by a load balancer every few seconds): logged at info, not error.
 */
export function answeredOnPurpose(res: http.ServerResponse): void {
  expected.add(res);
}

export type AccessLog = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * The access log (pino-http): one line per request when the answer is sent, with a request
 * id (taken from `X-Request-Id` or generated, and sent back in that header), method, the
 * path with secret query values redacted, status and time. No headers and no bodies, so
 * Authorization, cookies and the `auth[...]` fields of deliveries never reach it. 5xx log
 * at error, 4xx at warn, the rest (and answers `answeredOnPurpose`) at info.
 */
export function createAccessLog(
  logger: Logger,
  opts: {
    /**
     * Requests logged only when they fail (status 400 and up), without a request id: the event
     * intake, whose accepted deliveries are in the event log already, and for which the
     * middleware cost a fifth of the throughput (`npm run bench -- intake`, 8,736 against
     * 7,038 req/s).
     */
    quietWhenOk?: (req: http.IncomingMessage) => boolean;
    /** The clock of the per-minute budget of those failure lines (tests set a manual one). */
    now?: () => number;
  } = {},
): AccessLog {
  // Anyone can post to the intake: its failure lines take the intake's budget per status
  // (60 a minute each), then only a count of what was left out, as its other refusals do.
  const mayLog = createLogBudget(
    logger,
    opts.now ?? Date.now,
    undefined,
    'access log lines of failed deliveries left out in the last minute (each is counted in /metrics)',
  );
  const log = pinoHttp({
    logger,
    genReqId(req, res) {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
      res.setHeader('x-request-id', id);
      return id;
    },
    customLogLevel(_req, res, err) {
      if (!err && expected.has(res)) return 'info';
      if (err || res.statusCode >= 500) return 'error';
      return res.statusCode >= 400 ? 'warn' : 'info';
    },
    customSuccessMessage: () => 'request',
    customErrorMessage: () => 'request failed',
    // A 5xx answered on purpose (an install refused for want of client credentials, a
    // database that is locked) has no error: pino-http makes one up, "failed with status code
    // 503", whose stack is its own. The status says it all; a real error keeps its stack.
    customErrorObject: (_req, res, error, val) =>
      error.message === `failed with status code ${res.statusCode}`
        ? { ...val, err: undefined }
        : val,
    serializers: {
      req: (req: { id: unknown; method: string; url: string; raw?: RawRequest }) => ({
        id: req.id,
        method: req.method,
        // Express rewrites `url` inside mounted routers; `originalUrl` is what arrived.
        url: redactUrl(req.raw?.originalUrl ?? req.raw?.url ?? req.url),
        remoteAddress: req.raw?.socket?.remoteAddress,
      }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  });
  return (req, res) => {
    if (!opts.quietWhenOk?.(req)) return log(req, res);
    res.once('finish', () => {
      if (res.statusCode < 400 || !mayLog(`http_${res.statusCode}`)) return;
      logger[res.statusCode >= 500 ? 'error' : 'warn'](
        {
          req: {
            method: req.method,
            url: redactUrl(req.url),
            remoteAddress: req.socket?.remoteAddress,
          },
          res: { statusCode: res.statusCode },
        },
        'request failed',
      );
    });
  };
}
