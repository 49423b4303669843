import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { putSetting } from '../../db/stores/settings.js';
import { getTelegramChat } from '../../db/stores/telegram-chats.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal } from '../helpers/event-builder.js';
import { alertDestinations, alertJobs, enqueueAlertJobs } from '../../server/alerts/send.js';

/**
 * Every portal's `telegram` steps and alerts post through the operator's one bot, which is
 * in every chat a portal added it to: a chat is held by the first portal that posted there,
 * and the operator's TELEGRAM_CHAT_ID (-100 here) is no portal's, by id or by `@name`.
 */
describe('telegram chats between portals', () => {
  let h: AlertHarness;
  beforeEach(async () => {
    h = await startAlertHarness({}, { worker: { concurrency: 1 } });
    h.tg.addChat('@b_sales', -100555);
    h.tg.addChat('@ops_alerts', -100);
  });
  afterEach(async () => {
    await h.close();
  });

  const postTo = (memberId: string, chatId: string) =>
    saveRuleMap(
      h.t.deps.db,
      memberId,
      {
        rules: [
          {
            name: 'tell',
            on: ['ONCRMDEALUPDATE'],
            actions: [{ type: 'telegram', chatId, text: `from ${memberId}` }],
          },
        ],
      },
      h.t.clock.now(),
    );
  const runs = async (portalId: number) =>
    (await h.t.deps
      .db('action_runs as r')
      .join('events as e', 'e.id', 'r.event_id')
      .where('e.portal_id', portalId)
      .orderBy('r.id')
      .select('r.status', 'r.error')) as Array<{ status: string; error: string | null }>;
  const deliver = async (p: { row: { id: number }; memberId: string }) => {
    await h.addEvents({ id: p.row.id, memberId: p.memberId }, 1, { withJobs: true, entity: false });
    return h.services.worker.drain();
  };

  it("never posts a portal's step into a chat another portal holds, by id or by @name", async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    // B posts to its sales channel first: the chat is B's from then on.
    await postTo(b.memberId, '@b_sales');
    await deliver(b);
    // Sent to the id the name resolved to (the chat the guard checked).
    expect(h.tg.sent.map((m) => m.chat_id)).toEqual(['-100555']);
    expect(await getTelegramChat(h.t.deps.db, '-100555')).toMatchObject({
      portal_id: b.row.id,
      username: 'b_sales',
    });

    // A names the same chat by its id, then by its name: nothing is sent.
    for (const chat of ['-100555', '@B_Sales']) {
      await postTo(a.memberId, chat);
      await deliver(a);
    }
    expect(h.tg.sent).toHaveLength(1);
    const refused = await runs(a.row.id);
    expect(refused.map((r) => r.status)).toEqual(['failed', 'failed']);
    expect(refused[0]!.error).toMatch(/used by another portal of this app/);

    // Control: B still posts there, and A posts to a chat of its own.
    await deliver(b);
    await postTo(a.memberId, '-100777');
    await deliver(a);
    expect(h.tg.sent.map((m) => m.chat_id)).toEqual(['-100555', '-100555', '-100777']);
  });

  it("never posts a portal's step into the operator's chat by its @name", async () => {
    const a = await seedPortal(h.t.deps);
    await postTo(a.memberId, '@ops_alerts');
    await deliver(a);
    expect(h.tg.sent).toHaveLength(0);
    expect((await runs(a.row.id))[0]?.error).toMatch(/server's alert chat/);
  });

  it("refuses another portal's chat as a portal's alert chat, and never sends an alert there", async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    await postTo(b.memberId, '-100555');
    await deliver(b);
    // A's alert chat names B's chat (saved before B held it): its alert is not sent.
    await putSetting(h.t.deps.db, a.memberId, 'alerts.telegramChatId', '-100555', h.t.clock.now());
    const now = h.t.clock.now().getTime();
    const message = {
      kind: 'backlog',
      key: `backlog:${a.memberId}`,
      phase: 'firing',
      text: 'A is behind',
      subject: 'A',
    };
    const { jobs } = alertJobs(
      message as never,
      await alertDestinations(h.t.deps, a.memberId),
      a.row.id,
      3,
      now,
    );
    await enqueueAlertJobs(h.t.deps.db, jobs, now);
    await h.services.worker.drain();
    expect(h.tg.sent.map((m) => m.chat_id)).toEqual(['-100555']);
    const job = (await h.t.deps
      .db('jobs')
      .where({ type: 'alert', portal_id: a.row.id })
      .first()) as {
      status: string;
      last_error: string;
    };
    expect(job).toMatchObject({
      status: 'dead',
      last_error: expect.stringMatching(/used by another portal/),
    });
  });
  it("never posts into another portal's chat through an @name remembered for a chat it no longer names", async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    // A's own channel was @a_promo when A first posted there: the name is remembered.
    h.tg.addChat('@a_promo', -100777);
    await postTo(a.memberId, '@a_promo');
    await deliver(a);
    // B holds its chat; then A gives the name up and B's chat takes it.
    await postTo(b.memberId, '-100555');
    await deliver(b);
    h.tg.addChat('@a_promo', -100555);
    await postTo(a.memberId, '@a_promo');
    await deliver(a);
    const intoB = h.tg.sent.filter((m) => m.text === `from ${a.memberId}`).map((m) => m.chat_id);
    // A's steps go to the chat the guard admitted (A's own), never by a name that moved to B's.
    expect(intoB.map(String)).toEqual(['-100777', '-100777']);
  });
});
