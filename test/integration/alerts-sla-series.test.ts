import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { EventMap } from '../../server/rules/model.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal } from '../helpers/event-builder.js';

/**
 * Rule names are a portal admin's words: b24hooks_sla_breaches_total may not grow a series
 * for each of them. Before, four saves of 500 renamed rules with an SLA of a second left
 * 2,000 series and /metrics grew from 106 to 387 KB (a security review's reproduction).
 */
const RULES = 200;
/** server/metrics.ts MAX_RULE_LABELS (a literal: the test also runs against code without it). */
const MAX_RULE_LABELS = 50;
const mapNamed = (round: number): EventMap => ({
  rules: Array.from({ length: RULES }, (_, i) => ({
    name: `r${round}-${i}`,
    on: ['ONCRMDEALUPDATE'],
    actions: [{ type: 'http' as const, method: 'POST' as const, url: 'https://a.example/x' }],
    slaSeconds: 1,
  })),
});

describe('SLA breach series per rule name', () => {
  let h: AlertHarness;
  beforeEach(async () => {
    h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: '100000' });
  });
  afterEach(async () => {
    await h.close();
  });

  it('a portal renaming its rules adds at most MAX_RULE_LABELS series; the rest count as other', async () => {
    const portal = await seedPortal(h.t.deps);
    const other = await seedPortal(h.t.deps);
    await h.addEvents({ id: portal.row.id, memberId: portal.memberId }, 1);
    await h.addEvents({ id: other.row.id, memberId: other.memberId }, 1);
    for (let round = 0; round < 3; round++) {
      await saveRuleMap(h.t.deps.db, portal.memberId, mapNamed(round), h.t.clock.now());
      h.t.clock.advance(2_000);
      await h.services.alerts.checkOnce();
    }
    await saveRuleMap(h.t.deps.db, other.memberId, mapNamed(9), h.t.clock.now());
    h.t.clock.advance(2_000);
    await h.services.alerts.checkOnce();

    const values = (await h.t.deps.metrics.slaBreaches.get()).values;
    const of = (memberId: string) => values.filter((v) => v.labels.portal === memberId);
    // Tried: every breach was recorded and counted.
    const recorded = await h.t.deps.db('sla_breaches').count({ n: '*' }).first();
    expect(Number(recorded?.n)).toBe(4 * RULES);
    expect(values.reduce((sum, v) => sum + v.value, 0)).toBe(4 * RULES);
    expect(of(portal.memberId)).toHaveLength(MAX_RULE_LABELS + 1);
    expect(of(portal.memberId).find((v) => v.labels.rule === 'other')?.value).toBe(
      3 * RULES - MAX_RULE_LABELS,
    );
    // Another portal's names are its own: the first portal did not take its labels.
    expect(of(other.memberId).filter((v) => v.labels.rule !== 'other')).toHaveLength(
      MAX_RULE_LABELS,
    );
    expect(of(other.memberId).map((v) => v.labels.rule)).toContain('r9-0');
  }, 60_000);
});
