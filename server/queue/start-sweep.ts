import os from 'node:os';
import type { Knex } from 'knex';
import type { Logger } from '../lib/logger.js';
import { releaseHolders, runningHolders } from '../../db/stores/jobs.js';

/** This host's part of a worker id (`host:pid:random[#instance]`, see worker-context.ts). */
export const workerHost = () => os.hostname().slice(0, 32);

/** Whether process `pid` of this host is alive (signal 0 only asks). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, under another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Start-up sweep: returns to the queue the running jobs of processes that are
 * gone, and only those. A CLI (`replay --wait`, `rules test`, `recover sweep`) or another
 * server on the same database may be working right now; releasing its jobs would run them
 * twice at once. A holder is gone when it ran on this host and its pid is not alive (or is
 * this very process, which has not claimed anything yet: a restarted container keeps its
 * pid), or when its newest lease is older than `leaseMs`. Holders on other hosts within
 * their lease, and PostgreSQL instances (`#key`: their presence lock tells,
 * releaseOrphanedJobs), are left alone.
 */
export async function releaseDeadHolders(
  db: Knex,
  o: { now: number; leaseMs: number; logger?: Logger; alive?: (pid: number) => boolean },
): Promise<number> {
  const alive = o.alive ?? pidAlive;
  const host = workerHost();
  const gone: string[] = [];
  for (const { holder, lockedAt } of await runningHolders(db)) {
    if (lockedAt < o.now - o.leaseMs) {
      gone.push(holder);
      continue;
    }
    const m = /^(.*):(\d+):[^:#]+(#\d+)?$/.exec(holder);
    if (!m || m[3] !== undefined || m[1] !== host) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || !alive(pid)) gone.push(holder);
  }
  const n = await releaseHolders(db, gone, o.now);
  if (n)
    o.logger?.warn(
      { jobs: n, holders: gone },
      'returned the jobs of stopped processes to the queue',
    );
  return n;
}
