import http from 'node:http';
import { eventBody } from '../../helpers/event-builder.js';
import type { DeliveryTarget } from './installed-app.js';

export interface DeliveryAnswer {
  /** HTTP status, or 0 when no answer arrived (connection refused or reset). */
  status: number;
  retryAfter: string | undefined;
  body: string;
  /** When the answer arrived (ms, performance.now()). */
  at: number;
}

/** Base `ts` of generated deliveries (27 Nov 2025); distinct ts make distinct deliveries. */
export const BASE_TS = 1764237600;

/** The body Bitrix24 would post for an update of deal `id` (its n-th delivery: ts = BASE_TS + n). */
export function dealUpdate(who: DeliveryTarget, id: string | number, n: number): string {
  return eventBody({ portal: who, id, ts: BASE_TS + n });
}

/** POSTs one delivery as Bitrix24 does (form-encoded); never throws. */
export function postDelivery(
  url: URL,
  body: string,
  agent?: http.Agent,
  timeoutMs = 30_000,
): Promise<DeliveryAnswer> {
  return new Promise((resolve) => {
    const done = (a: Omit<DeliveryAnswer, 'at'>) => resolve({ ...a, at: performance.now() });
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        timeout: timeoutMs,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          done({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'],
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', () => done({ status: 0, retryAfter: undefined, body: '' }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => done({ status: 0, retryAfter: undefined, body: '' }));
    req.end(body);
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it is true or `timeoutMs` passed; resolves to whether it became true. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** 12345 → "12,345" (figures in the table). */
export const fmt = (n: number) => n.toLocaleString('en-US');
