import { afterEach, describe, expect, it } from '@jest/globals';
import { alertJobs, enqueueAlertJobs } from '../../server/alerts/send.js';
import { everyUpdateMap } from '../helpers/burst.js';
import { runCliIn } from '../helpers/cli.js';
import { startTelegramStandin, type TelegramStandin } from '../helpers/telegram-standin.js';
import {
  scenarioCliEnv,
  startPaidDealScenario,
  type PaidDealScenario,
} from '../helpers/scenario.js';

/** A new deal moved to WON a moment later, both processed: the WON update's event row. */
async function winDeal(
  s: PaidDealScenario,
  fields: Record<string, string>,
): Promise<{ id: number; status: string }> {
  const deal = await s.portal.addDeal({ STAGE_ID: 'NEW', OPPORTUNITY: '7', ...fields });
  await s.drain();
  s.shiftPortalTime(2000);
  await s.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
  await s.drain();
  return s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).first();
}

describe('b24hooks replay', () => {
  let s: PaidDealScenario;
  let tg: TelegramStandin | undefined;
  afterEach(async () => {
    await s.close();
    await tg?.close();
    tg = undefined;
  });

  it('replays a failed event after its target recovers, running only the unfinished steps', async () => {
    s = await startPaidDealScenario();
    s.logistics.handle(() => ({ status: 400, body: { error: 'bad address' } }));
    const contact = await s.portal.addContact({
      NAME: 'Cy',
      PHONE: [{ VALUE: '+15550003333', VALUE_TYPE: 'WORK' }],
    });
    const failed = await winDeal(s, { TITLE: 'R', CONTACT_ID: contact.id });
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
    // A date alone as --to is the end of that day (UTC), as the replay page reads it: the
    // day of the event, from and to, is that day (it was refused: "--to must be after").
    const day = s.h.t.clock.now().toISOString().slice(0, 10);
    const sameDay = await runCliIn(
      s.h.t,
      ['replay', '--from', day, '--to', day, '--status', 'failed', '--dry-run', '--json'],
      env,
    );
    expect([sameDay.code, sameDay.err]).toEqual([0, '']);
    expect(JSON.parse(sameDay.out)).toEqual({ matched: 1, queued: 0, dryRun: true });
    const events = await runCliIn(s.h.t, ['events', '--to', day, '--json'], env);
    expect((JSON.parse(events.out) as unknown[]).length).toBeGreaterThan(0);

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

  it('with --wait, fails (exit 1, one line) when replayed events fail again, naming the first error', async () => {
    s = await startPaidDealScenario();
    s.logistics.handle(() => ({ status: 400, body: { error: 'bad address' } }));
    const event = await winDeal(s, { TITLE: 'F' });
    expect(event.status).toBe('failed');
    const range = ['--from', '2000-01-01T00:00:00Z', '--to', '2100-01-01T00:00:00Z'];
    const run = await runCliIn(
      s.h.t,
      ['replay', ...range, '--status', 'failed', '--wait', '--json'],
      scenarioCliEnv(s),
    );
    expect(JSON.parse(run.out)).toMatchObject({
      queued: 1,
      unfinished: 0,
      statuses: { failed: 1 },
    });
    expect(run.code).toBe(1);
    const lines = run.err.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^b24hooks replay: 1 of 1 replayed events failed \\(event ${event.id}: .*400.*\\); b24hooks events --status failed lists them$`,
      ),
    );
    // Control: the target was asked again (the replay ran), and answered 400 again.
    expect(s.logistics.requests.length).toBeGreaterThanOrEqual(2);
    // The text form says where the events are in words (it printed the JSON object).
    const text = await runCliIn(
      s.h.t,
      ['replay', ...range, '--status', 'failed', '--wait'],
      scenarioCliEnv(s),
    );
    expect(text.out).toBe('1 events queued for replay; now 1 failed\n');
    // --timeout without --wait bounded nothing, and the replay ran anyway.
    const before = s.logistics.requests.length;
    const alone = await runCliIn(
      s.h.t,
      ['replay', ...range, '--status', 'failed', '--timeout', '5'],
      scenarioCliEnv(s),
    );
    expect([alone.code, alone.err]).toEqual([
      2,
      expect.stringContaining('--timeout bounds --wait'),
    ]);
    await s.drain();
    expect(s.logistics.requests.length).toBe(before);
  });

  it('with --wait, works every job type as the server does: an alert job it claims is sent', async () => {
    s = await startPaidDealScenario();
    tg = await startTelegramStandin();
    await s.portal.addDeal({ TITLE: 'A', STAGE_ID: 'NEW', OPPORTUNITY: '5' });
    await s.drain();
    // An alert waits in the queue when the CLI's worker starts (e.g. queued by a server's check).
    const now = s.h.t.clock.now().getTime();
    const message = {
      kind: 'backlog' as const,
      phase: 'firing' as const,
      key: 'backlog:total',
      memberId: null,
      subject: 'Backlog',
      text: 'backlog of all portals: 99 events',
    };
    const { jobs } = alertJobs(message, { telegram: '4242' }, null, 5, now);
    await enqueueAlertJobs(s.h.t.deps.db, jobs, now);

    const run = await runCliIn(
      s.h.t,
      [
        'replay',
        ...['--from', '2000-01-01T00:00:00Z', '--to', '2100-01-01T00:00:00Z'],
        ...['--event', 'ONCRMDEALADD', '--wait', '--json'],
      ],
      { ...scenarioCliEnv(s), TELEGRAM_BOT_TOKEN: tg.token, TELEGRAM_API_URL: tg.url },
    );
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    // Control: the replay itself ran (the deal's event was queued and processed again).
    expect(JSON.parse(run.out)).toMatchObject({
      matched: 1,
      queued: 1,
      unfinished: 0,
      statuses: { skipped: 1 }, // a new deal matches no rule of the sample map
    });
    // The alert job went out through the alert handler instead of dying for want of one.
    const alert = await s.h.t.deps.db('jobs').where({ type: 'alert' }).first();
    expect({ status: alert.status, error: alert.last_error }).toEqual({
      status: 'done',
      error: null,
    });
    expect(tg.sent.map((m) => [m.chat_id, m.plain])).toEqual([
      ['4242', expect.stringContaining('99 events')],
    ]);
  });

  it('with --wait --timeout, returns at the timeout though steps are still waiting for their target', async () => {
    // Every update of one deal posts to the accounting stand-in; one deal's events run one
    // after another (per-entity order), so a replay of four of them takes four answers.
    s = await startPaidDealScenario(everyUpdateMap);
    const deal = await s.portal.addDeal({ TITLE: 'Slow', STAGE_ID: 'NEW', OPPORTUNITY: '7' });
    await s.drain();
    for (let i = 1; i <= 4; i++) {
      s.shiftPortalTime(2000);
      await s.portal.updateDeal(deal.id, { TITLE: `Slow ${i}` });
      await s.drain();
    }
    const sent = s.accounting.requests.length;
    expect(sent).toBe(4);
    // Run again: the first step is refused for good, each other one waits 3 s for its
    // answer (within the step's timeout).
    let asked = 0;
    s.accounting.handle(() =>
      ++asked === 1
        ? { status: 400, body: { error: 'closed period' } }
        : new Promise((r) => setTimeout(() => r({ status: 200, body: { ok: true } }), 3_000)),
    );
    const range = ['--from', '2000-01-01T00:00:00Z', '--to', '2100-01-01T00:00:00Z'];
    const t0 = performance.now();
    const r = await runCliIn(
      s.h.t,
      [
        'replay',
        ...range,
        '--event',
        'ONCRMDEALUPDATE',
        '--rerun-succeeded',
        '--wait',
        '--timeout',
        '1',
        '--json',
      ],
      scenarioCliEnv(s),
    );
    const took = performance.now() - t0;
    // Exit 1, events left unfinished, and back after the timeout plus the one step in flight
    // (3 s), not after all four (12 s).
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out)).toMatchObject({ queued: 4 });
    expect(JSON.parse(r.out).unfinished).toBeGreaterThan(0);
    // The failure that came meanwhile is named too (only the timeout was).
    expect(r.err).toMatch(
      /^b24hooks replay: \d of 4 events not finished within --timeout; 1 of 4 replayed events failed \(event \d+: .*400.*\); b24hooks events --status failed lists them\n$/,
    );
    expect(took).toBeLessThan(8_000);
    // Control: the replay did run steps against the slow target.
    expect(s.accounting.requests.length).toBeGreaterThan(sent);
  }, 60_000);

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
