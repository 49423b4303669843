import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * A new comment in a task's chat arrives as ONTASKCOMMENTADD with FIELDS_AFTER[ID] 0 and the
 * chat message's MESSAGE_ID (test/emulator/rest-tasks.ts `taskCommentAddData` cites the core
 * and the docs). Taken as `task_comment 0`, every comment of the portal was one record: they
 * ran one at a time across all tasks, and the log named a comment 0.
 */
describe('task comments with the task chat', () => {
  let s: PaidDealScenario;
  beforeAll(async () => {
    s = await startPaidDealScenario(undefined, {
      B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONTASKADD,ONTASKCOMMENTADD',
    });
  });
  afterAll(async () => {
    await s.close();
  });

  it('takes each comment as the record its MESSAGE_ID names', async () => {
    const a = await s.portal.addTask({ TITLE: 'Call the client' });
    const b = await s.portal.addTask({ TITLE: 'Send the contract' });
    const first = await s.portal.addTaskComment(a.id);
    const second = await s.portal.addTaskComment(b.id);
    await s.drain();
    const rows = (await s.h.t.deps
      .db('events')
      .where({ event: 'ONTASKCOMMENTADD' })
      .orderBy('id')
      .select('entity_type', 'entity_id', 'status')) as Array<Record<string, string>>;
    // Control: both were delivered, with ID 0.
    for (const c of [first, second]) {
      expect(c.deliveries.map((d) => d.status)).toEqual([200]);
      expect(decodeURIComponent(c.deliveries[0]!.body)).toContain('[FIELDS_AFTER][ID]=0&');
    }
    expect(rows.map((r) => [r.entity_type, r.entity_id])).toEqual([
      ['task_comment', first.messageId],
      ['task_comment', second.messageId],
    ]);
  });
});
