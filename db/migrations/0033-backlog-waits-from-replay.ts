import type { Knex } from 'knex';

/** The replayed backlog, as written in db/stores/rollups.ts (REQUEUED_BACKLOG_SQL). */
const REQUEUED_BACKLOG =
  "queued_at is not null and status in ('received', 'processing', 'unverified')";
const HOUR = 3_600_000;

/**
 * A replayed event waits from its replay, not from its receipt: the oldest pending age (the
 * dashboard, `status`, `/metrics`, the backlog alert) said a week for a week-old deal
 * replayed a minute before.
 *
 * - Two partial indexes hold the replayed events still in the backlog, and nothing else: the
 *   earliest replay among them is one seek, per portal and per status. The intake never
 *   writes into them (a delivery is not a replay), so a delivery's commit costs no more.
 * - The rollups' backlog rows (`pend`) counted every backlog event at its receipt hour. They
 *   now count a replayed one apart (k1 `r`) at the hour of its last replay, and each event
 *   under its status (k2; RollupDeltas.event), so the oldest hour of each status' events
 *   never replayed is known. The rows are counted again from the backlog (its events only,
 *   through the status index).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    `create index events_backlog_requeued on events (portal_id, queued_at) where ${REQUEUED_BACKLOG}`,
  );
  await knex.raw(
    `create index events_backlog_requeued_at on events (status, queued_at) where ${REQUEUED_BACKLOG}`,
  );
  await recountPend(knex, {
    bucket: 'coalesce(queued_at, received_at)',
    k1: `case when queued_at is null then '' else 'r' end`,
    k2: 'status',
  });
}

export async function down(knex: Knex): Promise<void> {
  await recountPend(knex, { bucket: 'received_at', k1: `''`, k2: `''` });
  await knex.raw('drop index if exists events_backlog_requeued');
  await knex.raw('drop index if exists events_backlog_requeued_at');
}

/**
 * Replaces the `pend` rows with a count of the backlog keyed by these SQL expressions; not
 * while the count of a log stored before the rollups is pending (0028): that count keys them.
 */
async function recountPend(knex: Knex, key: { bucket: string; k1: string; k2: string }) {
  if ((await knex('rollup_recounts').first('id')) !== undefined) return;
  const hour = `${key.bucket} - ${key.bucket} % ${HOUR}`;
  // PostgreSQL refuses a constant in GROUP BY ('' for down's keys).
  const groups = ['coalesce(portal_id, 0)', hour, key.k1, key.k2].filter((e) => !/^'/.test(e));
  await knex('rollups').where({ kind: 'pend' }).delete();
  await knex.raw(
    `insert into rollups (kind, grain, portal_id, bucket, k1, k2, n, s, mx)
     select 'pend', 'h', coalesce(portal_id, 0), ${hour}, ${key.k1}, ${key.k2}, count(*), 0, 0
       from events where status in ('received', 'processing', 'unverified')
      group by ${groups.join(', ')}`,
  );
}
