import { seedStepTest } from '../helpers/seed-db.js';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { onPg } from '../helpers/pg.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';

/**
 * A CLEAN uninstall erases the portal from the lifecycle job of its ONAPPUNINSTALL event.
 * When the erasure stops half-way (a database error, a crash), that job must still be
 * there to run it again: the portal's tokens, settings and remaining rows go in the end.
 */
(onPg() ? describe.skip : describe)('a CLEAN uninstall interrupted half-way', () => {
  let h: InstallHarness;

  beforeAll(async () => {
    h = await startInstallHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is finished by the retry of its job', async () => {
    const { portal, settle } = await installPortal(h);
    const { db } = h.t.deps;
    const row = await db('portals').where('member_id', portal.memberId).first();
    expect(row.access_token_enc).not.toBeNull();
    await seedStepTest(db, row.id, h.t.clock.now().getTime());
    // The erasure fails after the portal's events (and jobs) went, before the rest.
    await db.raw(
      `create trigger erase_fails before delete on step_tests
       begin select raise(abort, 'simulated failure'); end`,
    );
    await portal.uninstall({ clean: true });
    await settle();
    // Stopped half-way: the row that failed, and the uninstall event whose retry finishes it.
    expect(await db('step_tests').where('portal_id', row.id)).toHaveLength(1);
    expect(await db('events').where({ portal_id: row.id, event: 'ONAPPUNINSTALL' })).toHaveLength(
      1,
    );

    await db.raw('drop trigger erase_fails');
    for (let i = 0; i < 5; i++) {
      h.t.clock.advance(3600_000);
      h.services.worker.notify();
      await settle();
    }
    const after = await db('portals').where('id', row.id).first();
    expect(after).toMatchObject({
      status: 'uninstalled',
      access_token_enc: null,
      refresh_token_enc: null,
      application_token_digest: null,
    });
    expect(await db('step_tests').where('portal_id', row.id)).toEqual([]);
    expect(await db('jobs').where('portal_id', row.id)).toEqual([]);
    expect(await db('events').where('portal_id', row.id)).toEqual([]);
  });
});
