import { describe, expect, it } from '@jest/globals';
import { isPg } from '../../db/connect.js';
import { eachRecoveryScenario } from '../helpers/recovery-scenario.js';
import type { PaidDealScenario } from '../helpers/scenario.js';

/**
 * How offline records are settled (server/README.md#loss-recovery): the confirm mode where the
 * portal has `rest_offline_extended`, the clearing mode where it does not, and
 * `event.offline.error` for a record that cannot be handled.
 */
describe('offline event modes and errors', () => {
  let s!: PaidDealScenario;
  eachRecoveryScenario('on', (x) => (s = x));

  const db = () => s.h.t.deps.db;
  const portalRow = () => db()('portals').where({ member_id: s.portal.memberId }).first();
  /** REST calls of `method` since the last `mark()`. */
  let from = 0;
  const mark = () => (from = s.portal.calls.length);
  const calls = (method: string) => s.portal.calls.slice(from).filter((c) => c.method === method);

  /** The last event id before the app went down in `lostChanges()`. */
  let before = 0;
  /**
   * Three deals seen online, then (app down) two of them won and one renamed. While the
   * deals are created, an ONOFFLINEEVENT drain may store a creation record whose online copy
   * is not committed yet (a harmless repeat: snapshots make it a no-op); counts of recovered
   * events therefore start at `before`.
   */
  async function lostChanges(): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await s.portal.addDeal({ TITLE: `Order ${i}`, STAGE_ID: 'NEW' })).id);
    }
    await s.drain();
    before = Number((await db()('events').max({ m: 'id' }).first())?.m ?? 0);
    s.shiftPortalTime(60_000);
    await s.h.pauseApp();
    await s.portal.updateDeal(ids[0]!, { STAGE_ID: 'WON' });
    await s.portal.updateDeal(ids[1]!, { STAGE_ID: 'WON' });
    await s.portal.updateDeal(ids[2]!, { TITLE: 'renamed' });
    await s.portal.whenIdle();
    s.h.resumeApp();
    mark();
    return ids;
  }

  /** The database refuses offline rows (a full disk, say): a real failure of the INSERT. */
  async function refuseOfflineRows(): Promise<void> {
    if (isPg(db())) {
      await db().raw(
        `create or replace function refuse_offline() returns trigger language plpgsql as $$
         begin raise exception 'database or disk is full'; end $$`,
      );
      await db().raw(
        `create trigger refuse_offline before insert on events for each row
         when (new.source = 'offline') execute function refuse_offline()`,
      );
    } else {
      await db().raw(
        `create trigger refuse_offline before insert on events when new.source = 'offline'
         begin select raise(abort, 'database or disk is full'); end`,
      );
    }
  }
  async function acceptOfflineRows(): Promise<void> {
    await db().raw(
      isPg(db()) ? 'drop trigger refuse_offline on events' : 'drop trigger refuse_offline',
    );
  }
  /** A drain that fails: its error's message (better-sqlite3's comes from another realm). */
  async function failedDrain(opts?: { retryErrors?: boolean }): Promise<string> {
    const outcome = (await s.h.services.offline.drainPortal(await portalRow(), opts).then(
      () => ({ message: 'resolved' }),
      (e: unknown) => e,
    )) as { message?: unknown };
    return String(outcome.message);
  }

  it('confirms with event.offline.clear (process_id, our connector) where the plan has the extended mode', async () => {
    await lostChanges();
    const report = await s.h.services.offline.drainPortal(await portalRow());
    expect(report).toEqual({ read: 3, recovered: 3, covered: 0, failed: 0 });
    expect(s.h.services.offline.modeOf((await portalRow()).id)).toBe('confirm');
    expect(calls('feature.get').at(-1)!.params).toEqual({ CODE: 'rest_offline_extended' });
    const get = calls('event.offline.get').at(-1)!;
    expect(get.params).toMatchObject({ clear: 0, auth_connector: 'b24hooks' });
    const clear = calls('event.offline.clear');
    expect(clear).toHaveLength(1);
    expect(clear[0]!.params).toMatchObject({ auth_connector: 'b24hooks' });
    expect(clear[0]!.params.process_id).toMatch(/^[0-9a-f]{32}$/);
    expect(clear[0]!.params.message_id).toHaveLength(3);
    expect(calls('event.offline.error')).toHaveLength(0);
    expect(s.portal.offlineEvents).toHaveLength(0);
    await s.drain();
    expect(s.accounting.requests).toHaveLength(2);
  });

  it('falls back to the clearing mode where the portal lacks rest_offline_extended', async () => {
    s.portal.setOfflineExtended(false);
    await lostChanges();
    const report = await s.h.services.offline.drainPortal(await portalRow());
    expect(report).toEqual({ read: 3, recovered: 3, covered: 0, failed: 0 });
    expect(s.h.services.offline.modeOf((await portalRow()).id)).toBe('clear');
    const gets = calls('event.offline.get');
    expect(gets.every((c) => String(c.params.clear) === '1')).toBe(true);
    expect(gets.every((c) => c.status === 200)).toBe(true);
    expect(calls('event.offline.clear')).toHaveLength(0);
    expect(calls('event.offline.error')).toHaveLength(0);
    expect(s.portal.offlineEvents).toHaveLength(0);
    await s.drain();
    expect(s.accounting.requests).toHaveLength(2);
    expect(s.logistics.requests).toHaveLength(2);

    // The timer's drain (error records are a confirm-mode thing) finds nothing more.
    expect(await s.h.services.offline.drainAll()).toEqual({
      read: 0,
      recovered: 0,
      covered: 0,
      failed: 0,
    });
  });

  it('switches to the clearing mode when the portal refuses clear=0 (WRONG_LICENSE)', async () => {
    // The first drain learns "confirm" from feature.get; then the plan changes.
    await s.h.services.offline.drainPortal(await portalRow());
    expect(s.h.services.offline.modeOf((await portalRow()).id)).toBe('confirm');
    s.portal.setOfflineExtended(false);
    await lostChanges();
    const report = await s.h.services.offline.drainPortal(await portalRow());
    expect(report).toMatchObject({ read: 3, recovered: 3, failed: 0 });
    expect(s.h.services.offline.modeOf((await portalRow()).id)).toBe('clear');
    // Refused once (the ONOFFLINEEVENT drains while the deals were created met it first).
    const refused = s.portal.calls.filter(
      (c) => c.method === 'event.offline.get' && c.error === 'WRONG_LICENSE',
    );
    expect(refused).toHaveLength(1);
    expect(refused[0]!.status).toBe(403);
    expect(s.portal.offlineEvents).toHaveLength(0);
    await s.drain();
    expect(s.accounting.requests).toHaveLength(2);
  });

  it('reports a record it cannot handle with event.offline.error and clears the rest', async () => {
    const ids = await lostChanges();
    // A record without the entity ID (a broken or foreign payload) while the app is down.
    await s.h.pauseApp();
    await s.portal.emit('ONCRMDEALUPDATE', { FIELDS: { TITLE: 'no id' } });
    await s.portal.whenIdle();
    s.h.resumeApp();

    const report = await s.h.services.offline.drainPortal(await portalRow());
    expect(report).toEqual({ read: 4, recovered: 3, covered: 0, failed: 1 });
    const error = calls('event.offline.error');
    expect(error).toHaveLength(1);
    expect(error[0]!.params).toMatchObject({ auth_connector: 'b24hooks' });
    const bad = s.portal.offlineEvents.filter((r) => r.error);
    expect(bad).toHaveLength(1);
    expect(error[0]!.params.message_id).toEqual([bad[0]!.messageId]);
    // Only the broken record is left on the portal, released from its batch.
    expect(s.portal.offlineEvents).toHaveLength(1);
    expect(bad[0]!.processId).toBe('');
    expect(
      await db()('events').where({ source: 'offline' }).andWhere('id', '>', before),
    ).toHaveLength(3);
    // event.offline.list reads the queue without reserving: the error mark is there.
    const listed = await s.h.t.deps.bitrix.call<Array<Record<string, unknown>>>(
      await portalRow(),
      'event.offline.list',
      { filter: { ERROR: 1 } },
    );
    expect(listed).toEqual([
      expect.objectContaining({ MESSAGE_ID: bad[0]!.messageId, ERROR: '1', PROCESS_ID: '' }),
    ]);
    await s.drain();
    expect(new Set(s.accounting.requests.map((r) => JSON.parse(r.body).dealId))).toEqual(
      new Set([ids[0], ids[1]]),
    );

    // The timer's drain tries the error record again: still unusable, it is cleared (reported
    // again it would stay reserved for good: event.offline.error leaves error records as they are).
    expect(await s.h.services.offline.drainAll()).toEqual({
      read: 1,
      recovered: 0,
      covered: 0,
      failed: 1,
    });
    expect(calls('event.offline.error')).toHaveLength(1);
    expect(calls('event.offline.clear').at(-1)!.params.message_id).toEqual([bad[0]!.messageId]);
    expect(s.portal.offlineEvents).toHaveLength(0);
    expect(await db()('offline_reservations')).toHaveLength(0);
    expect(
      await db()('events').where({ source: 'offline' }).andWhere('id', '>', before),
    ).toHaveLength(3);
  });

  it('reports the batch with event.offline.error when storing fails, and stores it on the next tick', async () => {
    const ids = await lostChanges();
    await refuseOfflineRows();
    expect(await failedDrain()).toMatch(/disk is full/);
    const error = calls('event.offline.error');
    expect(error).toHaveLength(1);
    expect(error[0]!.params.message_id).toHaveLength(3);
    expect(calls('event.offline.clear')).toHaveLength(0);
    expect(s.portal.offlineEvents.filter((r) => r.error)).toHaveLength(3);
    expect(s.portal.offlineEvents.every((r) => r.processId === '')).toBe(true);
    expect(
      await db()('events').where({ source: 'offline' }).andWhere('id', '>', before),
    ).toHaveLength(0);

    await acceptOfflineRows();
    expect(await s.h.services.offline.drainAll()).toEqual({
      read: 3,
      recovered: 3,
      covered: 0,
      failed: 0,
    });
    const retry = calls('event.offline.get').at(-1)!;
    expect(retry.params).toMatchObject({ error: 1, clear: 0 });
    expect(s.portal.offlineEvents).toHaveLength(0);
    await s.drain();
    await s.h.services.offline.drainAll();
    await s.drain();
    expect(new Set(s.accounting.requests.map((r) => JSON.parse(r.body).dealId))).toEqual(
      new Set([ids[0], ids[1]]),
    );
    expect(s.accounting.requests).toHaveLength(2);
  });

  /** The three lost changes, their batch's store and its report both refused: held. */
  async function heldAfterFailedReport(): Promise<string[]> {
    const ids = await lostChanges();
    await refuseOfflineRows();
    s.portal.failNext('event.offline.error', { status: 503, error: 'QUERY_LIMIT_EXCEEDED' }, 4);
    expect(await failedDrain()).toMatch(/disk is full/);
    return ids;
  }
  /** A drain that recovered the three lost changes: nothing left held, the two invoices sent. */
  async function expectRecovered(report: unknown, ids: string[]): Promise<void> {
    expect(report).toEqual({ read: 3, recovered: 3, covered: 0, failed: 0 });
    expect(s.portal.offlineEvents).toHaveLength(0);
    expect(await db()('offline_reservations')).toHaveLength(0);
    await s.drain();
    expect(new Set(s.accounting.requests.map((r) => JSON.parse(r.body).dealId))).toEqual(
      new Set([ids[0], ids[1]]),
    );
  }

  /*
   * Bitrix24 never releases a reservation itself (test/emulator/offline-queue.ts cites the
   * core), and event.offline.error releases only records not yet errors. The app counted on
   * reservations expiring: a batch whose store and report both failed, and error records
   * that failed a second time, stayed reserved for good, their changes lost.
   */
  it('reads error records that failed again by their process_id at the next drain', async () => {
    const ids = await lostChanges();
    await refuseOfflineRows();
    expect(await failedDrain()).toMatch(/disk is full/);
    // Read again as errors, and refused again: reserved under the error pass's process_id.
    expect(await failedDrain({ retryErrors: true })).toMatch(/disk is full/);
    expect(s.portal.offlineEvents.filter((r) => r.error && r.processId !== '')).toHaveLength(3);
    expect(await db()('offline_reservations')).toHaveLength(1);
    await acceptOfflineRows();
    mark();
    const report = await s.h.services.offline.drainPortal(await portalRow(), {
      retryErrors: true,
    });
    // The held batch, read by its process_id (a read without one finds nothing of it).
    const reread = calls('event.offline.get').filter((c) => c.params.process_id !== undefined);
    expect(reread).toHaveLength(1);
    expect(reread[0]!.params).toMatchObject({ error: 1, clear: 0 });
    await expectRecovered(report, ids);
  });

  it('reads a batch whose store and report both failed by its process_id at the next drain', async () => {
    const ids = await heldAfterFailedReport();
    // Control: the report was tried and refused; the batch stays reserved.
    expect(calls('event.offline.error').every((c) => c.error === 'QUERY_LIMIT_EXCEEDED')).toBe(
      true,
    );
    expect(s.portal.offlineEvents.filter((r) => r.processId !== '')).toHaveLength(3);
    await acceptOfflineRows();
    await expectRecovered(await s.h.services.offline.drainPortal(await portalRow()), ids);
  });

  it('reads a held batch once more, and clears it, when the plan has lost the extended mode', async () => {
    const ids = await heldAfterFailedReport();
    expect(await db()('offline_reservations')).toHaveLength(1);
    await acceptOfflineRows();
    // clear=0 is refused from now on (WRONG_LICENSE): the held batch was read that way first,
    // and every drain failed on it until the mode was asked again a day later.
    s.portal.setOfflineExtended(false);
    mark();
    const report = await s.h.services.offline.drainPortal(await portalRow(), {
      retryErrors: true,
    });
    const reread = calls('event.offline.get').filter((c) => c.params.process_id !== undefined);
    expect(reread.map((c) => [c.params.clear, c.error ?? null])).toEqual([
      [0, 'WRONG_LICENSE'],
      [1, null],
    ]);
    expect(s.h.services.offline.modeOf((await portalRow()).id)).toBe('clear');
    await expectRecovered(report, ids);
  });
});
