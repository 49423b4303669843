import { afterEach, describe, expect, it } from '@jest/globals';
import { runCliIn } from '../helpers/cli.js';
import {
  scenarioCliEnv,
  startPaidDealScenario,
  type PaidDealScenario,
} from '../helpers/scenario.js';

describe('b24hooks replay', () => {
  let s: PaidDealScenario;
  afterEach(async () => {
    await s.close();
  });

  it('replays a failed event after its target recovers, running only the unfinished steps', async () => {
    s = await startPaidDealScenario();
    s.logistics.handle(() => ({ status: 400, body: { error: 'bad address' } }));
    const contact = await s.portal.addContact({
      NAME: 'Cy',
      PHONE: [{ VALUE: '+15550003333', VALUE_TYPE: 'WORK' }],
    });
    const deal = await s.portal.addDeal({
      TITLE: 'R',
      STAGE_ID: 'NEW',
      OPPORTUNITY: '7',
      CONTACT_ID: contact.id,
    });
    await s.drain();
    s.shiftPortalTime(2000);
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await s.drain();
    const failed = await s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).first();
    expect(failed.status).toBe('failed');
    s.logistics.handle(() => ({ status: 200, body: { shipment: 'SHP-9' } }));

    const env = scenarioCliEnv(s);
    const range = ['--from', '2000-01-01T00:00:00Z', '--to', '2100-01-01T00:00:00Z'];
    const dry = await runCliIn(
      s.h.t,
      ['replay', ...range, '--status', 'failed', '--dry-run', '--json'],
      env,
    );
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.out)).toEqual({ matched: 1, queued: 0, dryRun: true });

    const run = await runCliIn(
      s.h.t,
      ['replay', ...range, '--status', 'failed', '--wait', '--json'],
      env,
    );
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out)).toMatchObject({
      matched: 1,
      queued: 1,
      unfinished: 0,
      statuses: { processed: 1 },
    });
    expect([
      s.accounting.requests.length,
      s.logistics.requests.length,
      s.sms.requests.length,
    ]).toEqual([1, 2, 1]);
    expect(s.portal.timeline).toHaveLength(1);
  });

  it('refuses to replay rejected deliveries and bad ranges with exit code 2', async () => {
    s = await startPaidDealScenario();
    for (const argv of [
      ['replay', '--from', '2026-01-01', '--to', '2027-01-01', '--status', 'rejected'],
      ['replay', '--from', '2027-01-01', '--to', '2026-01-01'],
      ['replay', '--to', '2026-01-01'],
    ]) {
      const r = await runCliIn(s.h.t, argv);
      expect(r.code).toBe(2);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    }
  });
});
