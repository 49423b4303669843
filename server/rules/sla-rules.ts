import type { Knex } from 'knex';
import { listPortals } from '../../db/stores/portals.js';
import { backfillRuleSla } from '../../db/stores/rollups.js';
import type { SlaRule } from '../../db/stores/sla.js';
import { effectiveMap } from './map-store.js';
import type { EventMap } from './model.js';

/** The enabled rules with an SLA of a map. */
export function slaRulesOf(map: EventMap): SlaRule[] {
  return map.rules
    .filter((r) => r.enabled !== false && typeof r.slaSeconds === 'number' && r.slaSeconds > 0)
    .map((r) => ({ name: r.name, on: r.on, slaSeconds: r.slaSeconds as number }));
}

/** The enabled rules with an SLA that apply to a portal (its own map, else the default). */
export async function slaRules(db: Knex, memberId: string): Promise<SlaRule[]> {
  return slaRulesOf(await effectiveMap(db, memberId));
}

/**
 * Rule matches stored before they kept their rule's SLA (migration 0016) take the SLA each
 * rule has now, so that counting the rollups counts them (`rollups rebuild`, and the count
 * after an upgrade across 0016: db/migrate.ts). Returns how many were filled in.
 */
export async function backfillMatchSla(db: Knex): Promise<number> {
  let filled = 0;
  for (const p of await listPortals(db)) {
    for (const rule of await slaRules(db, p.member_id)) {
      filled += await backfillRuleSla(db, p.id, rule.name, rule.slaSeconds * 1000);
    }
  }
  return filled;
}
