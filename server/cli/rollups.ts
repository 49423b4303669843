import { rebuildRollups } from '../../db/stores/rollups.js';
import { backfillMatchSla } from '../rules/sla-rules.js';
import { UsageError } from './io.js';
import type { CommandContext } from './context.js';

/**
 * `b24hooks rollups rebuild`: recounts every rollup (the figures of the dashboard, alerts,
 * `status` and `/metrics`) from the events kept. Rule matches stored before their SLA was
 * kept take their rule's SLA of now first.
 */
export async function rollupsCommand({ deps, positionals, json, io }: CommandContext) {
  if (positionals[0] !== 'rebuild' || positionals.length !== 1) {
    throw new UsageError('usage: b24hooks rollups rebuild');
  }
  const started = Date.now();
  const slaFilled = await backfillMatchSla(deps.db);
  const { rows } = await rebuildRollups(deps.db, deps.clock.now().getTime());
  const ms = Date.now() - started;
  if (json) io.out(JSON.stringify({ rows, slaFilled, ms }) + '\n');
  else io.out(`rollups rebuilt: ${rows} rows in ${(ms / 1000).toFixed(1)} s\n`);
  return 0;
}
