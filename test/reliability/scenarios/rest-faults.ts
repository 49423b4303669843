import { saveRuleMap } from '../../../server/rules/map-store.js';
import { armRestFaults, disarmRestFaults } from '../../emulator/rest-faults.js';
import { startInProcessApp } from '../lib/installed-app.js';
import { fmt } from '../lib/deliveries.js';
import { wonToTarget } from '../lib/rules.js';
import { startTarget } from '../lib/target.js';
import type { ReliabilityContext, Row, Scenario } from '../types.js';

/** Shares of REST requests that fail (before the method runs), and the storm period. */
const QUERY_LIMIT = 0.1;
const SERVER_ERROR = 0.05;
const TIMEOUT = 0.03;
const EXPIRE_EVERY = 10;
const pct = (x: number) => `${Math.round(x * 100)} %`;

/** How far the app clock moves between two rounds of the worker. */
const STEP_MS = 15_000;
/** The app's REST timeout here (30 s by default; held requests would make the run long). */
const REST_TIMEOUT_MS = 800;

/**
 * Bitrix24 REST failing while deals are won: the emulator answers a share of requests with
 * 503 QUERY_LIMIT_EXCEEDED, 500, or not at all (a timeout), and every few requests expires
 * every access token (an expired_token storm for everything in flight). Each event reads its
 * deal, posts to an HTTP target, then writes a timeline comment over REST. Injected faults
 * happen before the method runs, so a comment written twice would be the app's doing.
 */
export const scenario: Scenario = async (ctx: ReliabilityContext): Promise<Row[]> => {
  const full = ctx.scale === 'full';
  const dealCount = full ? 300 : 30;
  const target = await startTarget();
  const { h, portal, settle, close } = await startInProcessApp(
    ctx,
    { WORKER_CONCURRENCY: '8' },
    { bitrix: { timeoutMs: REST_TIMEOUT_MS } },
  );
  try {
    const map = wonToTarget(target.url, [
      {
        type: 'bitrix',
        name: 'comment',
        method: 'crm.timeline.comment.add',
        params: {
          fields: {
            ENTITY_TYPE: 'deal',
            ENTITY_ID: '{{deal.ID}}',
            COMMENT: 'Paid, event {{event.id}}',
          },
        },
      },
    ]);
    await saveRuleMap(h.t.deps.db, undefined, map, h.t.clock.now());
    // Retries read their deal afresh; the app paces REST in real time (2/s) while minutes
    // of app time pass here in seconds, so the portal gets a budget to match.
    h.t.deps.bitrix.limiter.setLimits(portal.memberId, { drainPerSec: 100, burst: 500 });
    const deals: string[] = [];
    for (let i = 0; i < dealCount; i++)
      deals.push((await portal.addDeal({ TITLE: `Order ${i}`, STAGE_ID: 'NEW' })).id);
    await settle();

    const refreshesBefore = h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token').length;
    const callsBefore = portal.calls.length;
    const faults = armRestFaults(portal.memberId, {
      queryLimit: QUERY_LIMIT,
      serverError: SERVER_ERROR,
      timeout: TIMEOUT,
      expireEvery: EXPIRE_EVERY,
      seed: 20261127,
    });
    for (const id of deals) await portal.updateDeal(id, { STAGE_ID: 'WON' });
    await portal.whenIdle();
    await h.services.intake.drain();
    const db = h.t.deps.db;
    const backlog = async () =>
      Number(
        (
          (await db('events')
            .whereIn('status', ['received', 'processing'])
            .count({ n: '*' })
            .first()) as { n: number }
        ).n,
      );
    let simMs = 0;
    await h.services.worker.drain();
    while ((await backlog()) > 0 && simMs < 6 * 3600_000) {
      h.t.clock.advance(STEP_MS);
      simMs += STEP_MS;
      await h.services.worker.drain();
    }
    disarmRestFaults(portal.memberId);

    const byStatus = (await db('events')
      .where('event', 'ONCRMDEALUPDATE')
      .select('id', 'status')) as { id: number; status: string }[];
    const processed = byStatus.filter((e) => e.status === 'processed').length;
    const failed = byStatus.filter((e) => e.status === 'failed').length;
    const comments = portal.timeline.filter((c) => c.COMMENT.startsWith('Paid, event '));
    const distinctComments = new Set(comments.map((c) => c.COMMENT)).size;
    const commentsTwice = comments.length - distinctComments;
    const refreshes =
      h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token').length - refreshesBefore;
    const calls = portal.calls.slice(callsBefore);
    const expiredAnswers = calls.filter((c) => c.error === 'expired_token').length;
    const httpTwice = target.duplicates();
    return [
      {
        area: 'Faults',
        check:
          `Bitrix24 REST failing: ${pct(QUERY_LIMIT)} 503 QUERY_LIMIT_EXCEEDED, ${pct(SERVER_ERROR)} 500,` +
          ` ${pct(TIMEOUT)} timeouts (reads and writes)`,
        measured:
          `events ${fmt(byStatus.length)} · processed ${fmt(processed)} · failed ${failed}` +
          ` · injected 503 ${faults.queryLimit}, 500 ${faults.serverError}, timeouts ${faults.timeout}` +
          ` of ${fmt(faults.requests)} requests · comments ${fmt(distinctComments)}, twice ${commentsTwice}` +
          ` · HTTP steps ${fmt(target.accepted.size)}, twice ${httpTwice} · ${Math.round(simMs / 60_000)} min`,
        expected: 'nothing lost, nothing twice',
        pass:
          byStatus.length === dealCount &&
          processed === dealCount &&
          distinctComments === dealCount &&
          commentsTwice === 0 &&
          target.accepted.size === dealCount &&
          httpTwice === 0 &&
          faults.queryLimit + faults.serverError + faults.timeout > 0,
      },
      {
        area: 'Faults',
        check: `expired_token storms: every ${EXPIRE_EVERY}th REST request expires every access token`,
        measured: `expiries ${faults.expiries} · expired_token answers ${expiredAnswers} · token refreshes ${refreshes}`,
        expected: '≤ 1 refresh per expiry',
        pass: faults.expiries > 0 && expiredAnswers > 0 && refreshes <= faults.expiries,
      },
    ];
  } finally {
    disarmRestFaults(portal.memberId);
    await close();
    await target.close();
  }
};
