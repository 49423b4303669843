import { afterEach, describe, expect, it } from '@jest/globals';
import { replayEvents } from '../../server/processing/replay.js';
import { rulesTestArgs, runCliIn } from '../helpers/cli.js';
import {
  scenarioCliEnv,
  startPaidDealScenario,
  type PaidDealScenario,
} from '../helpers/scenario.js';

/** The statements the scenario's database runs, grouped by transaction (one per autocommit). */
function transactionsOf(s: PaidDealScenario): string[][] {
  const transactions = new Map<string, string[]>();
  const byTransaction: string[][] = [];
  s.h.t.deps.db.on('query', (q: { sql: string; __knexTxId?: string }) => {
    const id = q.__knexTxId ?? `autocommit ${byTransaction.length}`;
    let t = transactions.get(id);
    if (!t) transactions.set(id, (t = byTransaction[byTransaction.push([]) - 1]!));
    t.push(q.sql.trim());
  });
  return byTransaction;
}

/** `rounds` rounds of two portal seconds each for the echoes of our own writes to arrive. */
async function echoRounds(s: PaidDealScenario, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    s.shiftPortalTime(2000);
    await s.drain();
  }
}

/**
 * A deal created, then changed by a person two seconds later, then `rounds` rounds of two
 * portal seconds each for the echoes of our own writes to arrive and be processed.
 */
async function changeThenEchoes(
  s: PaidDealScenario,
  fields: Record<string, string>,
  change: Record<string, string>,
  rounds: number,
): Promise<string> {
  const deal = await s.portal.addDeal(fields);
  await s.drain();
  s.shiftPortalTime(2000);
  await s.portal.updateDeal(deal.id, change);
  await echoRounds(s, rounds);
  return deal.id;
}

/**
 * A rule that writes a comment to every deal that is WON, one step per comment given: its
 * writes come back as echoes.
 */
const stampWonDeals = (...comments: string[]) => ({
  rules: [
    {
      name: 'Stamp won deals',
      on: ['ONCRMDEALUPDATE'],
      when: [{ field: 'STAGE_ID', equals: 'WON' }],
      actions: comments.map((comment) => ({
        type: 'bitrix' as const,
        method: 'crm.deal.update',
        params: { id: '{{deal.ID}}', fields: { COMMENTS: comment } },
      })),
    },
  ],
});

describe('processing guards', () => {
  let s: PaidDealScenario;
  afterEach(async () => {
    await s.close();
  });

  it('finishes an event no rule matches in one commit with its evaluation', async () => {
    s = await startPaidDealScenario();
    const byTransaction = transactionsOf(s);
    await s.portal.addDeal({ TITLE: 'Quiet', STAGE_ID: 'NEW' });
    await s.drain();
    const ev = await s.h.t.deps.db('events').where({ event: 'ONCRMDEALADD' }).first();
    expect(ev).toMatchObject({ status: 'skipped', last_error: 'no rule matched' });
    expect(ev.evaluated_at).not.toBeNull();
    // `evaluated_at` went in with the job's outcome, not in a commit of its own.
    const evaluated = byTransaction.filter((t) =>
      t.some((q) => /^update [`"]events[`"] set [`"]evaluated_at[`"]/.test(q)),
    );
    expect(evaluated).toHaveLength(1);
    expect(evaluated[0]!.some((q) => /^update [`"]jobs[`"] set [`"]status[`"]/.test(q))).toBe(true);
  });

  it('does not let a rule re-trigger itself through its own write', async () => {
    s = await startPaidDealScenario(() => stampWonDeals('stamped by b24hooks'));
    const byTransaction = transactionsOf(s);
    // Our crm.deal.update fires ONCRMDEALUPDATE back at us (seconds later, as Bitrix24's
    // queue does); a few rounds to be sure it stops.
    await changeThenEchoes(s, { TITLE: 'Loop', STAGE_ID: 'NEW' }, { STAGE_ID: 'WON' }, 4);
    const updates = s.portal.calls.filter((c) => c.method === 'crm.deal.update');
    expect(updates).toHaveLength(1);
    // The step's success, the write it made and the rule's `done` were one commit.
    const step = byTransaction.find((t) =>
      t.some((q) => /^insert into [`"]action_runs[`"]/.test(q)),
    );
    expect(step).toBeDefined();
    expect(
      step!.filter((q) => /^(insert into [`"]own_writes|update [`"]rule_matches)/.test(q)),
    ).toEqual([
      expect.stringMatching(/^insert into [`"]own_writes[`"]/),
      expect.stringMatching(/^update [`"]rule_matches[`"] set [`"]status[`"] = /),
    ]);
    const rows = await s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).orderBy('id');
    expect(rows.map((r) => r.status)).toEqual(['processed', 'skipped']);
    expect(rows[1].last_error).toMatch(/loop guard/);
  });

  it('expects no echo from a write that changes nothing, so the next change runs the rule', async () => {
    // The deal already carries the rule's comment: Bitrix24 saves nothing and sends no
    // ONCRMDEALUPDATE for it (test/emulator/crm-store.ts savedOnlyWhenChanged). The write
    // was remembered all the same, and the person's next change of the deal was taken as its
    // echo: the rule, which matches it, was skipped by the loop guard.
    s = await startPaidDealScenario(() => stampWonDeals('stamped by b24hooks'));
    const id = await changeThenEchoes(
      s,
      { TITLE: 'Stamped', STAGE_ID: 'NEW', COMMENTS: 'stamped by b24hooks' },
      { STAGE_ID: 'WON' },
      3,
    );
    // Control: the write was made, and changed nothing, so no event came of it.
    expect(s.portal.calls.filter((c) => c.method === 'crm.deal.update')).toHaveLength(1);
    expect(await s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' })).toHaveLength(1);
    expect(await s.h.t.deps.db('own_writes')).toHaveLength(0);
    s.shiftPortalTime(60_000);
    await s.portal.updateDeal(id, { TITLE: 'Stamped, checked' });
    await echoRounds(s, 3);
    const rows = await s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).orderBy('id');
    expect(rows.map((r) => [r.status, r.last_error])).toEqual([
      ['processed', null],
      ['processed', null],
    ]);
    expect(s.portal.calls.filter((c) => c.method === 'crm.deal.update')).toHaveLength(2);
  });

  it('remembers a write that puts back what an earlier step of the event changed', async () => {
    // Step 1 changes the comment, step 2 restores the text the deal was read with: both are
    // saved and echoed. Judged against the record as read, step 2 looked like no change.
    s = await startPaidDealScenario(() => stampWonDeals('working', 'stamped'));
    await changeThenEchoes(
      s,
      { TITLE: 'Two', STAGE_ID: 'NEW', COMMENTS: 'stamped' },
      { STAGE_ID: 'WON' },
      5,
    );
    expect(s.portal.calls.filter((c) => c.method === 'crm.deal.update')).toHaveLength(2);
    // Both writes remembered (the two echoes, in the same second with the same body, arrive
    // as one delivery: the intake keeps one), and the echo runs no rule.
    expect(await s.h.t.deps.db('own_writes')).toHaveLength(2);
    const rows = await s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).orderBy('id');
    expect(rows.map((r) => r.status)).toEqual(['processed', 'skipped']);
  });

  it('still knows the echo of its own write when the echo’s evaluation fails and is retried', async () => {
    // With the default settling time, the echo waits a second before it is read, so the
    // fault below can be set up between the rule's run and the echo's evaluation.
    s = await startPaidDealScenario(() => stampWonDeals('stamped for {{contact.NAME}}'), {
      EVENT_SETTLE_MS: undefined,
    });
    const settled = async () => {
      s.h.t.clock.advance(5_000);
      await s.drain();
    };
    const contact = await s.portal.addContact({ NAME: 'Ann' });
    const deal = await s.portal.addDeal({ TITLE: 'Echo', STAGE_ID: 'NEW', CONTACT_ID: contact.id });
    await settled();
    s.shiftPortalTime(2000);
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    // The rule's write (and so its echo) falls in a later second than the person's change.
    s.shiftPortalTime(2000);
    await settled();
    expect(s.portal.calls.filter((c) => c.method === 'crm.deal.update')).toHaveLength(1);
    // The echo's evaluation reads the contact again, and that read fails once.
    s.portal.failNext('crm.contact.get', { status: 500, error: 'INTERNAL_SERVER_ERROR' });
    for (let i = 0; i < 4; i++) {
      s.shiftPortalTime(2000);
      await settled();
    }
    const failedReads = s.portal.calls.filter(
      (c) => c.method === 'crm.contact.get' && c.status === 500,
    );
    expect(failedReads).toHaveLength(1);
    expect(s.portal.calls.filter((c) => c.method === 'crm.deal.update')).toHaveLength(1);
    const rows = await s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).orderBy('id');
    expect(rows.map((r) => r.status)).toEqual(['processed', 'skipped']);
    expect(rows[1].attempts).toBe(2);
    expect(rows[1].last_error).toMatch(/loop guard/);
  });

  it('keeps an echo an echo when it is replayed', async () => {
    s = await startPaidDealScenario(() => stampWonDeals('stamped by b24hooks'));
    await changeThenEchoes(s, { TITLE: 'Loop', STAGE_ID: 'NEW' }, { STAGE_ID: 'WON' }, 2);
    const events = () => s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).orderBy('id');
    expect((await events()).map((r) => r.status)).toEqual(['processed', 'skipped']);
    // Long after the write: the replay evaluates the echo again.
    s.h.t.clock.advance(60 * 60_000);
    const r = await replayEvents(s.h.t.deps, { filter: { event: 'ONCRMDEALUPDATE' } });
    expect(r.queued).toBe(2);
    for (let i = 0; i < 2; i++) {
      s.shiftPortalTime(2000);
      await s.drain();
    }
    expect(s.portal.calls.filter((c) => c.method === 'crm.deal.update')).toHaveLength(1);
    const rows = await events();
    expect(rows.map((row) => row.status)).toEqual(['processed', 'skipped']);
    expect(rows[1].last_error).toMatch(/loop guard/);
  });

  it('carries the chain depth on through two rules that trigger each other', async () => {
    const stamp = (name: string, from: string, to: string) => ({
      name,
      on: ['ONCRMDEALUPDATE'],
      when: [{ field: 'COMMENTS', equals: from }],
      actions: [
        {
          type: 'bitrix' as const,
          method: 'crm.deal.update',
          params: { id: '{{deal.ID}}', fields: { COMMENTS: to } },
        },
      ],
    });
    s = await startPaidDealScenario(() => ({
      rules: [stamp('A: b to a', 'b', 'a'), stamp('B: a to b', 'a', 'b')],
    }));
    await changeThenEchoes(
      s,
      { TITLE: 'Ping-pong', STAGE_ID: 'NEW', COMMENTS: '' },
      { COMMENTS: 'b' },
      10,
    );
    // Each write carries the chain on: A (after a person's change) writes at depth 0, B on its
    // echo at 1, A again at 2, B at 3; the echo of that one is the fourth chained write, past
    // the default limit of 3, and runs no rule. (An echo that lands in the same second as the
    // one before it is the same delivery to Bitrix24 and ends the chain sooner.)
    const updates = s.portal.calls.filter((c) => c.method === 'crm.deal.update');
    expect(updates.length).toBeGreaterThanOrEqual(2);
    expect(updates.length).toBeLessThanOrEqual(4);
    const writes = await s.h.t.deps.db('own_writes').orderBy('id').select('rule_name', 'depth');
    expect(writes.map((w) => Number(w.depth))).toEqual(updates.map((_, k) => k));
    expect(writes.map((w) => w.rule_name)).toEqual(
      updates.map((_, k) => (k % 2 === 0 ? 'A: b to a' : 'B: a to b')),
    );
  });

  it('fails a step whose template names a missing value, naming the path', async () => {
    s = await startPaidDealScenario();
    const deal = await s.portal.addDeal({ TITLE: 'No contact', STAGE_ID: 'NEW', OPPORTUNITY: '5' });
    await s.drain();
    s.shiftPortalTime(1_000);
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await s.drain();
    const ev = await s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).first();
    expect(ev.status).toBe('failed');
    expect(ev.last_error).toMatch(/sms.*contact\.PHONE/);
    // Steps before the broken one ran once; none after it.
    expect([
      s.accounting.requests.length,
      s.logistics.requests.length,
      s.sms.requests.length,
    ]).toEqual([1, 1, 0]);
  });

  it('dry-runs the map for one entity without sending anything (rules test)', async () => {
    s = await startPaidDealScenario();
    const contact = await s.portal.addContact({
      NAME: 'Bo',
      PHONE: [{ VALUE: '+15550002222', VALUE_TYPE: 'WORK' }],
    });
    const deal = await s.portal.addDeal({
      TITLE: 'Dry',
      STAGE_ID: 'NEW',
      OPPORTUNITY: '99',
      CONTACT_ID: contact.id,
    });
    await s.drain();
    await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' }, { userId: 1 }).catch(() => undefined);
    const rulesTest = (id: string, ...more: string[]) =>
      runCliIn(
        s.h.t,
        [...rulesTestArgs(s.portal.memberId, 'ONCRMDEALUPDATE', id), ...more],
        scenarioCliEnv(s),
      );
    const { code, out, err } = await rulesTest(deal.id, '--json');
    expect(err).toBe('');
    expect(code).toBe(0);
    const doc = JSON.parse(out);
    expect(doc.previous).toEqual({ STAGE_ID: 'NEW' });
    expect(doc.rules[0]).toMatchObject({ matched: true });
    expect(doc.rules[0].steps.map((x: { type: string }) => x.type)).toEqual([
      'http',
      'http',
      'sms',
      'bitrix',
    ]);
    expect(doc.rules[0].steps[2].rendered).toMatchObject({ to: '+15550002222' });
    expect(s.accounting.requests).toHaveLength(0);
    // A deal the portal does not have: exit 1, one line naming the command.
    const missing = await rulesTest('99999');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^b24hooks rules test: deal 99999 does not exist on \S+\n$/);

    // Once the app has seen the deal WON, "becomes WON" does not match a new event of it; the
    // dry run says when it would, and shows its steps with --assume-change (as "Try it" does).
    await s.drain();
    const sent = s.accounting.requests.length; // the event itself ran
    const seen = await rulesTest(deal.id);
    expect(seen.out).toMatch(/^no {4}Paid deal[^\n]*already "WON"/m);
    expect(seen.out).toContain('matches when this change happens: --assume-change shows');
    expect(seen.out).not.toContain('+15550002222');
    const assumed = await rulesTest(deal.id, '--assume-change');
    expect(assumed.code).toBe(0);
    expect(assumed.out).toMatch(/^MATCH Paid deal[^\n]*\(as when this change happens; now: /m);
    expect(assumed.out).toContain('+15550002222');
    expect(s.accounting.requests).toHaveLength(sent);
    // A misspelt event is named, as rules import names it.
    const typo = await runCliIn(
      s.h.t,
      rulesTestArgs(s.portal.memberId, 'ONCRMDEALUPDTE', deal.id),
      scenarioCliEnv(s),
    );
    expect(typo.code).toBe(2);
    expect(typo.err).toContain('did you mean ONCRMDEALUPDATE?');
  });
});
