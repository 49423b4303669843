import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the external system behaves right now. */
export type TargetMode = 'up' | 'error' | 'refused';

/**
 * An external HTTP system (accounting, logistics…) that rules post to. It counts what it
 * accepted by `Idempotency-Key`, so a step delivered twice shows, and can go down: `error`
 * answers 503, `refused` closes the listener (connection refused) and reopens it on the same
 * port when brought back up.
 */
export interface Target {
  readonly url: string;
  mode(): TargetMode;
  setMode(mode: TargetMode): Promise<void>;
  /** Requests answered 2xx, by Idempotency-Key. */
  readonly accepted: Map<string, number>;
  /** When each key was accepted (Date.now()), in order. */
  readonly acceptedAt: Map<string, number[]>;
  /** Requests answered 503 while in `error` mode. */
  readonly refusedWithError: number;
  /** Requests that arrived at all (any mode but `refused`). */
  readonly received: number;
  /** Keys accepted more than once (each extra acceptance counts). */
  duplicates(): number;
  close(): Promise<void>;
}

export async function startTarget(opts: { delayMs?: number } = {}): Promise<Target> {
  let mode: TargetMode = 'up';
  const accepted = new Map<string, number>();
  const acceptedAt = new Map<string, number[]>();
  let refusedWithError = 0;
  let received = 0;
  const handler: http.RequestListener = (req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      if (mode !== 'up') {
        refusedWithError++;
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '60' });
        res.end('{"error":"maintenance"}');
        return;
      }
      const answer = () => {
        const key = String(req.headers['idempotency-key'] ?? '');
        accepted.set(key, (accepted.get(key) ?? 0) + 1);
        acceptedAt.set(key, [...(acceptedAt.get(key) ?? []), Date.now()]);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      };
      if (opts.delayMs) setTimeout(answer, opts.delayMs);
      else answer();
    });
  };
  let server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    url: `http://127.0.0.1:${port}`,
    mode: () => mode,
    async setMode(next) {
      if (next === mode) return;
      if (mode === 'refused') {
        server = http.createServer(handler);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, '127.0.0.1', () => resolve());
        });
      } else if (next === 'refused') await stop();
      mode = next;
    },
    accepted,
    acceptedAt,
    get refusedWithError() {
      return refusedWithError;
    },
    get received() {
      return received;
    },
    duplicates() {
      let n = 0;
      for (const c of accepted.values()) n += c - 1;
      return n;
    },
    async close() {
      if (mode !== 'refused') await stop();
    },
  };
}

/**
 * Steps the target accepted again after the app had recorded them as succeeded (read from
 * `action_runs`): what "each step runs once" forbids. A step whose success could not be
 * recorded (the process died, the disk refused) is sent again under the same key, which is
 * what receivers dedupe on; that is counted by `duplicates()`, not here.
 */
export async function repeatedAfterSuccess(
  target: Target,
  db: import('knex').Knex,
): Promise<number> {
  const rows = (await db('action_runs')
    .where({ status: 'succeeded' })
    .select('idempotency_key', 'finished_at')) as {
    idempotency_key: string;
    finished_at: number | string;
  }[];
  let n = 0;
  for (const r of rows) {
    const times = target.acceptedAt.get(r.idempotency_key) ?? [];
    n += times.filter((t) => t > Number(r.finished_at)).length;
  }
  return n;
}
