import { randomInt } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../lib/logger.js';
import { LOCK } from '../../db/locks.js';

/**
 * An instance's presence on PostgreSQL: one connection of its own that holds the
 * session advisory lock (LOCK.instance, key) for as long as the process lives. PostgreSQL
 * drops the lock the moment that connection goes — a SIGKILL, a crash, a lost host — so the
 * other instances can tell a dead instance's jobs from a slow one's without waiting for a
 * timeout (db/stores/jobs.ts releaseOrphanedJobs). The same connection holds leader locks:
 * roles only one instance should play at a time (the alert monitor).
 */
export interface InstanceLock {
  /** This instance's key, part of every job lease it takes (`locked_by` ends in `#key`). */
  readonly key: number;
  /** Whether the presence lock is held now (false while reconnecting). */
  held(): boolean;
  /**
   * Takes the session lock (ns, id) if free, or confirms it is still ours; false when
   * another instance holds it. Held until this instance closes or loses its connection.
   */
  tryLead(ns: number, id: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface InstanceLockOptions {
  /** Wait between reconnection attempts after the connection was lost. @default 2 s */
  retryMs?: number;
}

export async function openInstanceLock(
  connectionString: string,
  logger: Logger,
  opts: InstanceLockOptions = {},
): Promise<InstanceLock> {
  const key = randomInt(1, 2 ** 31 - 1);
  const retryMs = opts.retryMs ?? 2000;
  const leading = new Set<string>();
  let client: pg.Client | undefined;
  let holding = false;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  async function connect(): Promise<void> {
    const c = new pg.Client({
      connectionString,
      keepAlive: true,
      application_name: `b24hooks#${key}`,
    });
    c.on('error', (e) => lost(c, e));
    c.on('end', () => lost(c, new Error('connection closed')));
    try {
      await c.connect();
      await c.query('select pg_advisory_lock($1, $2)', [LOCK.instance, key]);
    } catch (e) {
      await c.end().catch(() => undefined);
      throw e;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    holding = true;
  }

  function lost(c: pg.Client, e: Error): void {
    if (closed || (client !== undefined && client !== c)) return;
    if (holding) {
      logger.error(
        { err: e.message, instance: key },
        'lost the instance lock connection: reconnecting',
      );
    }
    holding = false;
    leading.clear();
    client = undefined;
    c.end().catch(() => undefined);
    if (retry) return;
    retry = setTimeout(() => {
      retry = undefined;
      connect().catch((err: unknown) => lost(c, err as Error));
    }, retryMs);
    retry.unref();
  }

  await connect();
  return {
    key,
    held: () => holding,
    async tryLead(ns, id) {
      const name = `${ns}:${id}`;
      const c = client;
      if (!c || !holding) return false;
      if (leading.has(name)) return true;
      const { rows } = await c.query<{ ok: boolean }>('select pg_try_advisory_lock($1, $2) as ok', [
        ns,
        id,
      ]);
      if (rows[0]?.ok) leading.add(name);
      return rows[0]?.ok === true;
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      holding = false;
      leading.clear();
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
