import type { Knex } from 'knex';

/** One step an admin sent by hand from the rule builder (never an event's action run). */
export interface StepTestRow {
  id: number;
  portal_id: number;
  rule_name: string;
  step_index: number;
  step_name: string | null;
  action_type: string;
  user_id: number;
  status: 'succeeded' | 'failed';
  request_summary: string | null;
  response_summary: string | null;
  error: string | null;
  created_at: number;
}

/** How many test sends a portal keeps: the newest ones. */
export const KEEP_PER_PORTAL = 50;

/** Records a test send and drops the portal's older ones beyond KEEP_PER_PORTAL. */
export async function recordStepTest(db: Knex, row: Omit<StepTestRow, 'id'>): Promise<void> {
  await db.transaction(async (trx) => {
    await trx('step_tests').insert(row);
    const keep = trx('step_tests')
      .where('portal_id', row.portal_id)
      .orderBy('id', 'desc')
      .limit(KEEP_PER_PORTAL)
      .select('id');
    // Through the (portal_id, rule_name, id) index; a portal holds at most KEEP + 1 rows.
    await trx('step_tests')
      .where('portal_id', row.portal_id)
      .whereNotIn('id', trx.select('id').from(keep.as('k')))
      .delete();
  });
}

/** The newest test sends of one rule, newest first. */
export async function listStepTests(
  db: Knex,
  portalId: number,
  ruleName: string,
  limit = 10,
): Promise<StepTestRow[]> {
  return (await db('step_tests')
    .where({ portal_id: portalId, rule_name: ruleName })
    .orderBy('id', 'desc')
    .limit(limit)) as StepTestRow[];
}
