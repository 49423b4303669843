import type { Knex } from 'knex';

/** The backlog statuses, as written in db/stores/rollups.ts (REQUEUED_BACKLOG_SQL). */
const REQUEUED_BACKLOG =
  "queued_at is not null and status in ('received', 'processing', 'unverified')";
const HOUR = 3_600_000;

/**
 * A replayed event waits from its replay, not from its receipt: the oldest pending age (the
 * dashboard, `status`, `/metrics`, the backlog alert) said a week for a week-old deal
 * replayed a minute before.
 *
 * - Two partial indexes hold the replayed events still in the backlog, and nothing else: the
 *   earliest replay among them is one seek, per portal and for all portals. The intake never
 *   writes into them (a delivery is not a replay), so a delivery's commit costs no more.
 * - The rollups' backlog rows (`pend`) counted those events at their receipt hour; they now
 *   count them at the hour of their last replay (RollupDeltas.event). The ones waiting now
 *   are moved.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    `create index events_backlog_requeued on events (portal_id, queued_at) where ${REQUEUED_BACKLOG}`,
  );
  await knex.raw(
    `create index events_backlog_requeued_at on events (status, queued_at) where ${REQUEUED_BACKLOG}`,
  );
  await movePend(knex, 'received_at', 'queued_at');
}

export async function down(knex: Knex): Promise<void> {
  await movePend(knex, 'queued_at', 'received_at');
  await knex.raw('drop index if exists events_backlog_requeued');
  await knex.raw('drop index if exists events_backlog_requeued_at');
}

/** Moves the replayed backlog events' `pend` counts from the hour of `from` to that of `to`. */
async function movePend(knex: Knex, from: string, to: string): Promise<void> {
  const hour = (c: string) => `${c} - ${c} % ${HOUR}`;
  const answer = await knex.raw(
    `select coalesce(portal_id, 0) as p, ${hour(from)} as a, ${hour(to)} as b, count(*) as n
       from events where ${REQUEUED_BACKLOG}
      group by coalesce(portal_id, 0), ${hour(from)}, ${hour(to)}`,
  );
  const rows = (Array.isArray(answer) ? answer : answer.rows) as Array<Record<string, unknown>>;
  const add = (portalId: number, bucket: number, n: number) =>
    knex.raw(
      `insert into rollups (kind, grain, portal_id, bucket, k1, k2, n, s, mx)
       values ('pend', 'h', ?, ?, '', '', ?, 0, 0)
       on conflict (kind, grain, portal_id, bucket, k1, k2) do update set n = rollups.n + excluded.n`,
      [portalId, bucket, n],
    );
  for (const r of rows) {
    if (Number(r.a) === Number(r.b)) continue;
    await add(Number(r.p), Number(r.a), -Number(r.n));
    await add(Number(r.p), Number(r.b), Number(r.n));
  }
}
