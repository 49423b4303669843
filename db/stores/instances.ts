import type { Knex } from 'knex';
import { LOCK } from '../locks.js';

/**
 * PostgreSQL: the keys of the instances running on this database now — those holding their
 * presence lock (server/cluster/instance-lock.ts). PostgreSQL drops a lock with its
 * connection, so a process that died is not among them.
 */
export async function liveInstanceKeys(db: Knex): Promise<Set<number>> {
  const held = (await db.raw(
    `select objid::bigint as key from pg_locks
      where locktype = 'advisory' and granted and objsubid = 2 and classid::bigint = ?
        and database = (select oid from pg_database where datname = current_database())`,
    [LOCK.instance],
  )) as { rows: { key: number }[] };
  return new Set(held.rows.map((r) => Number(r.key)));
}
