import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { prune } from '../../server/retention/prune.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

const DAY = 86_400_000;

/**
 * A record's snapshot (its watched fields' last values) is what `becomes` compares with:
 * retention pruned it after RETENTION_DAYS unseen, and a deal left a month at NEW, then won,
 * sent no invoice ("earlier value unknown"). It stays while the record lives and goes with
 * its DELETE event.
 */
describe('snapshots and retention', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario(undefined, {
      B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMDEALDELETE',
    });
  });
  afterEach(async () => {
    await s.close();
  });

  const snapshots = async () =>
    Number(
      ((await s.h.t.deps.db('entity_snapshots').count({ n: '*' }).first()) as { n: unknown }).n,
    );

  it('a deal left 31 days at NEW, a retention pass, then won: the invoice is sent', async () => {
    const contact = await s.portal.addContact({
      NAME: 'Ann',
      PHONE: [{ VALUE: '+15550001111', VALUE_TYPE: 'WORK' }],
    });
    const deal = await s.portal.addDeal({
      TITLE: 'Order 1',
      STAGE_ID: 'NEW',
      OPPORTUNITY: '1500.00',
      CONTACT_ID: contact.id,
    });
    await s.portal.updateDeal(deal.id, { TITLE: 'Order 1 (checked)' });
    await s.drain();
    expect(await snapshots()).toBe(1);
    s.h.t.clock.advance(31 * DAY);
    s.shiftPortalTime(31 * DAY);
    const pass = await prune(s.h.t.deps);
    // Control: the pass ran and removed what it should, the deal's finished events.
    expect(pass.tables.events).toBeGreaterThan(0);
    expect(await snapshots()).toBe(1);
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await s.drain();
    const won = (await s.h.t.deps
      .db('events')
      .where('event', 'ONCRMDEALUPDATE')
      .orderBy('id', 'desc')
      .first('status', 'last_error')) as { status: string; last_error: string | null };
    expect([won.status, won.last_error]).toEqual(['processed', null]);
    expect(s.accounting.requests).toHaveLength(1);
  });

  it('the DELETE event takes the record’s snapshot with it', async () => {
    const a = await s.portal.addDeal({ TITLE: 'A', STAGE_ID: 'NEW', OPPORTUNITY: '1.00' });
    const b = await s.portal.addDeal({ TITLE: 'B', STAGE_ID: 'NEW', OPPORTUNITY: '1.00' });
    await s.drain();
    expect(await snapshots()).toBe(2);
    await s.portal.deleteDeal(a.id);
    await s.drain();
    const deleted = (await s.h.t.deps
      .db('events')
      .where('event', 'ONCRMDEALDELETE')
      .pluck('status')) as string[];
    expect(deleted).toEqual(['skipped']);
    const left = (await s.h.t.deps.db('entity_snapshots').pluck('entity_id')) as string[];
    expect(left.map(String)).toEqual([String(b.id)]);
  });
});

describe('snapshots of records deleted with no DELETE event bound (the default)', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario();
  });
  afterEach(async () => {
    await s.close();
  });

  it('go when an event finds the record gone, and a year unseen at the latest', async () => {
    const { db } = s.h.t.deps;
    const gone = await s.portal.addDeal({ TITLE: 'Gone', STAGE_ID: 'NEW', OPPORTUNITY: '1.00' });
    const left = await s.portal.addDeal({ TITLE: 'Left', STAGE_ID: 'NEW', OPPORTUNITY: '1.00' });
    await s.portal.updateDeal(gone.id, { TITLE: 'Gone (checked)' });
    await s.portal.updateDeal(left.id, { TITLE: 'Left (checked)' });
    await s.drain();
    expect(((await db('entity_snapshots').pluck('entity_id')) as unknown[]).length).toBe(2);
    // Changed (a minute on: another delivery, not a copy), then deleted before the change is
    // processed: the event finds it gone.
    s.shiftPortalTime(60_000);
    await s.portal.updateDeal(gone.id, { TITLE: 'Gone (last)' });
    await s.portal.deleteDeal(gone.id);
    await s.drain();
    const note = (await db('events')
      .where('event', 'ONCRMDEALUPDATE')
      .orderBy('id', 'desc')
      .first('status', 'last_error')) as Record<string, unknown>;
    expect(note.status).toBe('skipped');
    expect(((await db('entity_snapshots').pluck('entity_id')) as unknown[]).map(String)).toEqual([
      String(left.id),
    ]);
    // The one left, unseen for a year (as a record deleted with no event of it would be):
    // retention takes it then, not before.
    s.h.t.clock.advance(364 * DAY);
    await prune(s.h.t.deps);
    expect(await db('entity_snapshots').count({ n: '*' }).first()).toMatchObject({ n: 1 });
    s.h.t.clock.advance(2 * DAY);
    await prune(s.h.t.deps);
    expect(await db('entity_snapshots').count({ n: '*' }).first()).toMatchObject({ n: 0 });
  });
});
