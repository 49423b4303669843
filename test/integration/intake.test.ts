import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appParts } from '../../server/routes/index.js';
import { createServices, type Services } from '../../server/services.js';
import { buildListener } from '../../server/start.js';
import { resolveUnverified } from '../../server/intake/reverify.js';
import { REJECTED_LOG_BUDGET_PER_MINUTE } from '../../server/intake/intake.js';
import { updatePortal } from '../../db/stores/portals.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { eventBody, seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { storedText } from '../helpers/stored-text.js';
import { isPg } from '../../db/connect.js';
import { MAX_EVENT_LABELS } from '../../server/metrics.js';
import { SHARED_KEY_FIELD } from '../../server/intake/dedupe-key.js';
import { up as clearRejectedKeys } from '../../db/migrations/0023-rejected-hold-no-key.js';

const FORM = 'application/x-www-form-urlencoded';
const PATH = '/b24/events';

describe('event intake', () => {
  let t: TestDeps;
  let services: Services;
  let listener: ReturnType<typeof buildListener>;
  let portal: TestPortal;

  const post = (body: string, type = FORM) =>
    request(listener).post(PATH).set('Content-Type', type).send(body);
  const events = () => t.deps.db('events').orderBy('id');
  const jobs = () => t.deps.db('jobs').orderBy('id');

  /** The shared key sealed with an unverified delivery's tokens. */
  const sharedKeyOf = (row: { auth_enc: string }) =>
    (JSON.parse(t.deps.box.decrypt(row.auth_enc)) as Record<string, string>)[SHARED_KEY_FIELD]!;
  /**
   * Another instance's group commit under way: an identical verified delivery stored with
   * `key` in a transaction left open for the test to finish.
   */
  const uncommittedCopy = async (p: TestPortal, event: string, key: string) => {
    const trx = await t.deps.db.transaction();
    await trx('events').insert({
      portal_id: p.row.id,
      member_id: p.memberId,
      event,
      status: 'received',
      received_at: Date.now(),
      dedupe_key: key,
      source: 'online',
    });
    return trx;
  };

  beforeEach(async () => {
    t = await createTestDeps({ BODY_LIMIT: '8kb' });
    services = createServices(t.deps);
    listener = buildListener(t.deps, appParts(t.deps, services));
    portal = await seedPortal(t.deps);
  });
  afterEach(async () => {
    await services.intake.drain();
    await t.close();
  });

  it('stores a genuine delivery and its job before answering 200', async () => {
    const res = await post(eventBody({ portal, id: 759 }));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
    const [ev] = await events();
    expect(ev).toMatchObject({
      event: 'ONCRMDEALUPDATE',
      entity_type: 'deal',
      entity_id: '759',
      status: 'received',
      member_id: portal.memberId,
      portal_id: portal.row.id,
    });
    const [job] = await jobs();
    expect(job).toMatchObject({
      type: 'process_event',
      status: 'pending',
      event_id: ev.id,
      entity_key: `${portal.row.id}:deal:759`,
    });
  });

  it('answers an identical repeat 200 and counts it on the original without a second job', async () => {
    const body = eventBody({ portal, id: 5, accessToken: 'same-token' });
    expect((await post(body)).status).toBe(200);
    const again = await post(body);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ ok: true, duplicate: true });
    const rows = await events();
    expect(rows).toHaveLength(1);
    expect(rows[0].duplicates).toBe(1);
    expect(await jobs()).toHaveLength(1);
  });

  it('counts concurrent identical deliveries once', async () => {
    const body = eventBody({ portal, id: 6 });
    const res = await Promise.all(Array.from({ length: 5 }, () => post(body)));
    expect(res.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const rows = await events();
    expect(rows).toHaveLength(1);
    expect(rows[0].duplicates).toBe(4);
  });

  it('counts only genuine deliveries toward the flood the worker yields to', async () => {
    // The worker holds back while more than 1,000 deliveries a second arrive
    // (server/services.ts). Anyone may post to the events URL: counting refused posts let a
    // stranger's 1,500 a second of junk hold every portal to about one event a second.
    let most = 0;
    const watch = async (res: Promise<{ status: number }>) => {
      const { status } = await res;
      most = Math.max(most, services.intake.recentRate());
      return status;
    };
    const junk = [
      ...Array.from({ length: 10 }, () => post('x', 'text/plain')),
      ...Array.from({ length: 10 }, () => post('x'.repeat(9000))),
      ...Array.from({ length: 10 }, () => post('event=ONCRMDEALUPDATE&data=%ZZ')),
      ...Array.from({ length: 10 }, (_, i) =>
        post(eventBody({ portal, id: i, applicationToken: 'forged' })),
      ),
      ...Array.from({ length: 10 }, (_, i) =>
        post(eventBody({ portal: { ...portal, memberId: 'nobody' }, id: i })),
      ),
    ];
    const refused = await Promise.all(junk.map(watch));
    expect(new Set(refused)).toEqual(new Set([415, 413, 400, 401]));
    expect(most).toBe(0);
    // Control: genuine ones count.
    const genuine = await Promise.all(
      Array.from({ length: 10 }, (_, i) => watch(post(eventBody({ portal, id: 800 + i })))),
    );
    expect(genuine).toEqual(Array(10).fill(200));
    expect(most).toBeGreaterThanOrEqual(5);
  });

  it('treats a later update of the same deal (another ts) as a new event', async () => {
    await post(eventBody({ portal, id: 7, ts: 1000 }));
    await post(eventBody({ portal, id: 7, ts: 1001 }));
    expect(await events()).toHaveLength(2);
  });

  it('logs at most 60 refused deliveries a minute, and then how many it left out', async () => {
    const lines = (msg: string) => t.logs.lines.filter((l) => l.includes(msg));
    const forged = (i: number) =>
      post(eventBody({ portal: { ...portal, memberId: `forged${i}` }, id: i }));
    for (let i = 0; i < 150; i += 10) {
      const answers = await Promise.all(Array.from({ length: 10 }, (_, j) => forged(i + j)));
      expect(answers.map((r) => r.status)).toEqual(Array(10).fill(401));
    }
    // Control: every one was refused and counted; the log took the first 60.
    const counted = await t.deps.metrics.registry.getSingleMetricAsString(
      'b24hooks_events_rejected_total',
    );
    expect(counted).toMatch(/reason="unknown_portal"} 150/);
    expect(lines('event delivery rejected')).toHaveLength(60);
    t.clock.advance(60_000);
    await forged(999);
    expect(lines('event delivery rejected')).toHaveLength(61);
    expect(lines('intake log lines left out').map((l) => JSON.parse(l).left_out)).toEqual([90]);
  });

  /** Posts `chunks` chunked (no content-length); the status and the Connection header. */
  const chunked = (type: string, chunks: string[]) =>
    new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const server = http.createServer(listener).listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        const req = http.request(
          {
            port,
            host: '127.0.0.1',
            method: 'POST',
            path: PATH,
            headers: { 'content-type': type, 'transfer-encoding': 'chunked' },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              server.close(() =>
                resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }),
              ),
            );
          },
        );
        req.on('error', reject);
        for (const c of chunks) req.write(c);
        req.end();
      });
    });

  it('answers 413 over BODY_LIMIT, by header and by streamed size', async () => {
    const big = eventBody({ portal, data: { FIELDS: { ID: '1', X: 'y'.repeat(9000) } } });
    expect((await post(big)).status).toBe(413);
    // Chunked: no content-length header.
    const res = await chunked(
      FORM,
      Array.from({ length: 10 }, () => 'a'.repeat(1000)),
    );
    expect(res).toEqual({ status: 413, connection: 'close' });
    expect(await events()).toHaveLength(0);
  });

  it('answers 413 before 415 when both apply', async () => {
    expect((await post('x'.repeat(9000), 'application/json')).status).toBe(413);
    // A streamed body of another type is counted too: over the limit it is 413, and the
    // connection is closed rather than read to its end.
    const over = await chunked(
      'text/plain',
      Array.from({ length: 10 }, () => 'a'.repeat(1000)),
    );
    expect(over).toEqual({ status: 413, connection: 'close' });
    // Control: the same type within the limit is 415, on a connection kept open.
    const under = await chunked('text/plain', ['a'.repeat(100)]);
    expect(under.status).toBe(415);
    expect(under.connection).not.toBe('close');
  });

  it('answers 415 for another content type', async () => {
    expect((await post(JSON.stringify({ event: 'X' }), 'application/json')).status).toBe(415);
    expect((await post(eventBody({ portal }), 'text/plain')).status).toBe(415);
  });

  it('accepts the form content type with a charset', async () => {
    expect((await post(eventBody({ portal }), `${FORM}; charset=UTF-8`)).status).toBe(200);
  });

  it('answers 400 with a short reason for malformed bodies', async () => {
    const cases = [
      '',
      'event=ONCRMDEALUPDATE',
      'auth[member_id]=x',
      `event=bad name&auth[member_id]=${portal.memberId}`,
      `event=ONCRMDEALUPDATE&auth=flat&x=1`,
      `event=ONCRMDEALUPDATE&auth[member_id]=${portal.memberId}&ts=yesterday`,
      `event=ONCRMDEALUPDATE&auth[member_id]=${portal.memberId}&data[a][b][c][d][e][f][g][h]=1`,
      `event=ONCRMDEALUPDATE&auth[member_id]=${portal.memberId}&` +
        Array.from({ length: 600 }, (_, i) => `p${i}=1`).join('&'),
    ];
    for (const body of cases) {
      const res = await post(body);
      expect(res.status).toBe(400);
      expect(typeof res.body.error).toBe('string');
    }
    expect(await events()).toHaveLength(0);
  });

  it('answers 401 for an unknown portal and logs the attempt as rejected', async () => {
    const res = await post(eventBody({ portal: { ...portal, memberId: 'f'.repeat(32) } }));
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'unauthorized' });
    const [ev] = await events();
    expect(ev).toMatchObject({ status: 'rejected', reject_reason: 'unknown_portal' });
    expect(await jobs()).toHaveLength(0);
  });

  it('keeps the figures of rejected deliveries bounded, whatever event names strangers invent', async () => {
    const allTime = async () =>
      Number(
        (await t.deps.db('rollups').where({ kind: 'ev', grain: 'a' }).count({ n: '*' }).first())?.n,
      );
    const stranger = { ...portal, memberId: 'd'.repeat(32) };
    const before = await allTime();
    // Within the per-member_id budget of stored rejected rows (20 a minute).
    for (let i = 0; i < 15; i++) {
      const res = await post(eventBody({ portal: stranger, event: `ONFORGED${i}X`, id: i }));
      expect(res.status).toBe(401);
    }
    // Control: the 15 rejected rows were stored and are counted, each name in its row.
    const rejected = await t.deps.db('events').where({ status: 'rejected' }).pluck('event');
    expect(new Set(rejected).size).toBe(15);
    const counted = await t.deps
      .db('rollups')
      .where({ kind: 'ev', grain: 'a', k2: 'rejected' })
      .sum({ n: 'n' })
      .first();
    expect(Number(counted?.n)).toBe(15);
    // One all-time row for them, not one per invented name.
    expect((await allTime()) - before).toBe(1);
  });

  it('answers 401 for a wrong application_token', async () => {
    expect((await post(eventBody({ portal, applicationToken: 'forged-token' }))).status).toBe(401);
    const [ev] = await events();
    expect(ev).toMatchObject({ status: 'rejected', reject_reason: 'token_mismatch' });
  });

  it('answers 401 for an uninstalled portal', async () => {
    await updatePortal(t.deps.db, portal.row.id, { status: 'uninstalled' });
    t.deps.portals.invalidate(portal.memberId);
    expect((await post(eventBody({ portal }))).status).toBe(401);
  });

  it('bounds the rejected log: past the per-minute budget only the counter grows', async () => {
    const forged = { ...portal, memberId: 'e'.repeat(32) };
    const n = REJECTED_LOG_BUDGET_PER_MINUTE + 40;
    for (let i = 0; i < n; i += 20) {
      await Promise.all(
        Array.from({ length: 20 }, (_, j) => post(eventBody({ portal: forged, id: i + j }))),
      );
    }
    const stored = Number((await t.deps.db('events').count({ n: '*' }).first())?.n);
    expect(stored).toBeLessThanOrEqual(REJECTED_LOG_BUDGET_PER_MINUTE);
    const metrics = await t.deps.metrics.registry.getSingleMetricAsString(
      'b24hooks_events_rejected_total',
    );
    expect(metrics).toContain(`reason="unknown_portal"} ${n}`);
  });

  it('stores deliveries that arrive before the application token as unverified, then verifies them', async () => {
    const early = await seedPortal(t.deps, { applicationToken: null });
    const realToken = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const genuine = { ...early, applicationToken: realToken };
    expect((await post(eventBody({ portal: genuine, id: 1 }))).status).toBe(200);
    expect(
      (await post(eventBody({ portal: { ...early, applicationToken: 'forged' }, id: 2 }))).status,
    ).toBe(200);
    let rows = await t.deps.db('events').where({ portal_id: early.row.id }).orderBy('id');
    expect(rows.map((r) => r.status)).toEqual(['unverified', 'unverified']);
    expect(rows.every((r) => r.auth_enc && !String(r.auth_enc).includes(realToken))).toBe(true);
    // No delivery's job yet: only the portal's proof job, which asks for a delivery that
    // can prove the token (ONAPPTEST) when no install delivery waits.
    expect(
      (await t.deps.db('jobs').where({ portal_id: early.row.id })).map((j) => j.entity_key),
    ).toEqual([`proof:${early.row.id}`]);

    await updatePortal(t.deps.db, early.row.id, {
      application_token_digest: t.deps.box.digest(realToken),
    });
    expect(await resolveUnverified(t.deps, early.row.id)).toEqual({
      verified: 1,
      rejected: 1,
      duplicates: 0,
    });
    rows = await t.deps.db('events').where({ portal_id: early.row.id }).orderBy('id');
    expect(rows.map((r) => [r.entity_id, r.status, r.auth_enc])).toEqual([
      ['1', 'received', null],
      ['2', 'rejected', null],
    ]);
    expect(
      await t.deps.db('jobs').where({ portal_id: early.row.id, type: 'process_event' }),
    ).toEqual([expect.objectContaining({ event_id: rows[0].id })]);
  });

  it('keeps a genuine delivery that a forged copy beat to the intake while the token was unknown', async () => {
    const early = await seedPortal(t.deps, { applicationToken: null });
    const realToken = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';
    const forged = { ...early, applicationToken: 'guessed-by-a-stranger' };
    const genuine = { ...early, applicationToken: realToken };
    // The same event, ts and data: before, the genuine one was answered as the forgery's
    // duplicate, and went with it when the forgery was rejected.
    expect((await post(eventBody({ portal: forged, id: 7 }))).status).toBe(200);
    expect((await post(eventBody({ portal: genuine, id: 7 }))).status).toBe(200);
    expect((await post(eventBody({ portal: genuine, id: 7 }))).status).toBe(200);
    let rows = await t.deps.db('events').where({ portal_id: early.row.id }).orderBy('id');
    expect(rows.map((r) => [r.status, r.duplicates])).toEqual([
      ['unverified', 0],
      ['unverified', 1],
    ]);

    await updatePortal(t.deps.db, early.row.id, {
      application_token_digest: t.deps.box.digest(realToken),
    });
    t.deps.portals.invalidate(early.memberId);
    expect(await resolveUnverified(t.deps, early.row.id)).toEqual({
      verified: 1,
      rejected: 1,
      duplicates: 0,
    });
    rows = await t.deps.db('events').where({ portal_id: early.row.id }).orderBy('id');
    expect(
      rows.map((r) => [r.entity_id, r.status, r.reject_reason, r.dedupe_key === null]),
    ).toEqual([
      ['7', 'rejected', 'token_mismatch', true],
      ['7', 'received', null, false],
    ]);
    // Verified, it holds the shared key: a later identical delivery is its duplicate.
    const res = await post(eventBody({ portal: genuine, id: 7 }));
    expect(res.status).toBe(200);
    expect(res.text).toContain('duplicate');
    rows = await t.deps.db('events').where({ portal_id: early.row.id }).orderBy('id');
    expect(rows.map((r) => [r.status, r.duplicates])).toEqual([
      ['rejected', 0],
      ['received', 2],
    ]);
    expect(
      await t.deps.db('jobs').where({ portal_id: early.row.id, type: 'process_event' }),
    ).toHaveLength(1);
  });

  it('counts an unverified delivery as a duplicate when an identical one was verified first', async () => {
    const early = await seedPortal(t.deps, { applicationToken: null });
    const realToken = '0a1b2c3d4e5f60718293a4b5c6d7e8f9';
    const genuine = { ...early, applicationToken: realToken };
    expect((await post(eventBody({ portal: genuine, id: 9 }))).status).toBe(200);
    // The token becomes known; an identical delivery arrives before the early one is resolved.
    await updatePortal(t.deps.db, early.row.id, {
      application_token_digest: t.deps.box.digest(realToken),
    });
    t.deps.portals.invalidate(early.memberId);
    expect((await post(eventBody({ portal: genuine, id: 9 }))).status).toBe(200);
    expect(await resolveUnverified(t.deps, early.row.id)).toEqual({
      verified: 0,
      rejected: 0,
      duplicates: 1,
    });
    const rows = await t.deps.db('events').where({ portal_id: early.row.id });
    expect(rows.map((r) => [r.status, r.duplicates])).toEqual([['received', 1]]);
    expect(
      await t.deps.db('jobs').where({ portal_id: early.row.id, type: 'process_event' }),
    ).toHaveLength(1);
    // The removed row left the rollups with it: the backlog is the one event.
    const pend = await t.deps
      .db('rollups')
      .where({ kind: 'pend', portal_id: early.row.id })
      .sum({ n: 'n' })
      .first();
    expect(Number(pend?.n)).toBe(1);
  });

  it('lets a genuine delivery take the key a forgery rejected before kept', async () => {
    const early = await seedPortal(t.deps, { applicationToken: null });
    const token = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';
    // A forged copy kept and rejected by an earlier version: it still holds the shared key.
    await post(eventBody({ portal: { ...early, applicationToken: 'forged' }, id: 7 }));
    const [old] = await t.deps.db('events').where({ portal_id: early.row.id });
    const shared = sharedKeyOf(old);
    await t.deps
      .db('events')
      .where({ id: old.id })
      .update({ dedupe_key: shared, status: 'rejected', auth_enc: null });
    expect(
      (await post(eventBody({ portal: { ...early, applicationToken: token }, id: 7 }))).status,
    ).toBe(200);
    await updatePortal(t.deps.db, early.row.id, {
      application_token_digest: t.deps.box.digest(token),
    });
    expect(await resolveUnverified(t.deps, early.row.id)).toEqual({
      verified: 1,
      rejected: 0,
      duplicates: 0,
    });
    const rows = await t.deps.db('events').where({ portal_id: early.row.id }).orderBy('id');
    expect(rows.map((x) => [x.status, x.dedupe_key])).toEqual([
      ['rejected', null],
      ['received', shared],
    ]);
  });

  it('resolves each unverified delivery once when two callers verify at once', async () => {
    const early = await seedPortal(t.deps, { applicationToken: null });
    const token = '1a2b3c4d5e6f70818293a4b5c6d7e8f9';
    for (const id of [1, 2]) {
      await post(eventBody({ portal: { ...early, applicationToken: token }, id }));
    }
    await updatePortal(t.deps.db, early.row.id, {
      application_token_digest: t.deps.box.digest(token),
    });
    const [a, b] = await Promise.all([
      resolveUnverified(t.deps, early.row.id),
      resolveUnverified(t.deps, early.row.id),
    ]);
    expect(a.verified + b.verified).toBe(2);
    // Before: both verified both, and each event had two jobs (processed twice).
    const jobs = await t.deps
      .db('jobs')
      .where({ portal_id: early.row.id, type: 'process_event' })
      .orderBy('event_id');
    expect(jobs.map((j) => j.event_id)).toHaveLength(2);
    expect(new Set(jobs.map((j) => j.event_id)).size).toBe(2);
  });

  it('never deadlocks with an intake that stores an identical delivery meanwhile (PostgreSQL)', async () => {
    if (!isPg(t.deps.db)) return;
    const early = await seedPortal(t.deps, { applicationToken: null });
    const token = '2a3b4c5d6e7f80918293a4b5c6d7e8f9';
    for (const id of [1, 2]) {
      await post(eventBody({ portal: { ...early, applicationToken: token }, id }));
    }
    const evs = await t.deps.db('events').where({ portal_id: early.row.id }).orderBy('id');
    const shared = sharedKeyOf(evs[1]);
    await updatePortal(t.deps.db, early.row.id, {
      application_token_digest: t.deps.box.digest(token),
    });
    // Another instance's group commit: an identical copy of the second delivery, then (as
    // the intake does after its rows) the portal's rollups, which verifying the first one
    // also moves.
    const other = await uncommittedCopy(early, evs[1].event, shared);
    const verifying = resolveUnverified(t.deps, early.row.id).then(
      (r) => r,
      (e: Error) => e,
    );
    await new Promise((r) => setTimeout(r, 300));
    const rollups = other('rollups').where({ portal_id: early.row.id }).increment('n', 0);
    await Promise.race([rollups, new Promise((r) => setTimeout(r, 300))]);
    await other.commit().catch(() => undefined);
    // Before: one transaction for all held the first one's rollups while waiting for the
    // second one's key: deadlock detected, and one side failed.
    expect(await verifying).toEqual({ verified: 1, rejected: 0, duplicates: 1 });
  });

  it('clears the keys of deliveries rejected before the upgrade (migration 0023)', async () => {
    await post(eventBody({ portal, id: 31 }));
    const [kept] = await events();
    const rejected = { ...kept, id: undefined, status: 'rejected', dedupe_key: 'old-key-31' };
    await t.deps.db('events').insert(rejected);
    await clearRejectedKeys(t.deps.db);
    expect((await events()).map((e) => [e.status, e.dedupe_key === null])).toEqual([
      ['received', false],
      ['rejected', true],
    ]);
  });

  it('counts, not fails, when the intake commits an identical delivery while verifying (PostgreSQL)', async () => {
    if (!isPg(t.deps.db)) return;
    const early = await seedPortal(t.deps, { applicationToken: null });
    const token = '0a1b2c3d4e5f60718293a4b5c6d7e8f9';
    expect(
      (await post(eventBody({ portal: { ...early, applicationToken: token }, id: 9 }))).status,
    ).toBe(200);
    const [ev] = await t.deps.db('events').where({ portal_id: early.row.id });
    const shared = sharedKeyOf(ev);
    await updatePortal(t.deps.db, early.row.id, {
      application_token_digest: t.deps.box.digest(token),
    });
    // Another instance's group commit holds an identical verified delivery, not committed
    // when the verification looks for a holder: before, its UPDATE failed on the unique index
    // and took the whole verification transaction with it.
    const other = await uncommittedCopy(early, ev.event, shared);
    const verifying = resolveUnverified(t.deps, early.row.id);
    await new Promise((r) => setTimeout(r, 300));
    await other.commit();
    expect(await verifying).toEqual({ verified: 0, rejected: 0, duplicates: 1 });
    const rows = await t.deps.db('events').where({ portal_id: early.row.id });
    expect(rows.map((r) => [r.status, r.duplicates])).toEqual([['received', 1]]);
  });

  it('answers 401 to ONAPPINSTALL and ONAPPUPDATE with another token once the portal’s token is known', async () => {
    for (const event of ['ONAPPINSTALL', 'ONAPPUPDATE']) {
      const res = await post(
        eventBody({
          portal,
          event,
          data: { VERSION: '1', ACTIVE: 'Y', INSTALLED: 'Y', LANGUAGE_ID: 'en' },
          applicationToken: 'new-token-after-reinstall',
        }),
      );
      expect(res.status).toBe(401);
    }
    expect((await events()).map((e) => [e.event, e.status, e.reject_reason])).toEqual([
      ['ONAPPINSTALL', 'rejected', 'token_mismatch'],
      ['ONAPPUPDATE', 'rejected', 'token_mismatch'],
    ]);
    expect(await jobs()).toHaveLength(0);
  });

  it('keeps ONAPPINSTALL as unverified with one proof job while the portal’s token is unknown', async () => {
    const early = await seedPortal(t.deps, { applicationToken: null });
    for (let i = 0; i < 3; i++) {
      const res = await post(
        eventBody({
          portal: { ...early, applicationToken: `candidate-token-${i}` },
          event: 'ONAPPINSTALL',
          data: { VERSION: String(i), ACTIVE: 'Y', INSTALLED: 'Y', LANGUAGE_ID: 'en' },
        }),
      );
      expect(res.status).toBe(200);
    }
    const rows = await events();
    expect(rows.map((e) => [e.status, e.entity_type])).toEqual([
      ['unverified', 'app'],
      ['unverified', 'app'],
      ['unverified', 'app'],
    ]);
    expect(await jobs()).toEqual([
      expect.objectContaining({
        type: 'lifecycle',
        event_id: null,
        portal_id: early.row.id,
        entity_key: `proof:${early.row.id}`,
        status: 'pending',
      }),
    ]);
  });

  it('never writes an event token in clear to the database file', async () => {
    const accessToken = 'secret-access-token-0123456789abcdef';
    await post(eventBody({ portal, id: 1, accessToken }));
    await post(
      eventBody({
        portal: { ...portal, applicationToken: 'forged-application-token-xyz' },
        id: 2,
        accessToken,
      }),
    );
    const early = await seedPortal(t.deps, { applicationToken: null });
    await post(
      eventBody({
        portal: { ...early, applicationToken: 'early-application-token-abc' },
        id: 3,
        accessToken,
      }),
    );
    // Misspelt token keys are refused (no application_token) but logged: masked all the same.
    const misspelt = eventBody({ portal, id: 4 }).replace(
      /auth%5Bapplication_token%5D=[^&]*/,
      'auth%5BACCESS_TOKEN%5D=misspelt-token-0123456789&auth%5Bapplication-token%5D=misspelt-app-token-xyz',
    );
    expect((await post(misspelt)).status).toBe(401);
    const bytes = await storedText(t);
    for (const secret of [
      accessToken,
      portal.applicationToken,
      'forged-application-token-xyz',
      'early-application-token-abc',
      'misspelt-token-0123456789',
      'misspelt-app-token-xyz',
    ]) {
      expect(bytes).not.toContain(secret);
    }
    expect(t.logs.text()).not.toContain(accessToken);
    expect(t.logs.text()).not.toContain(portal.applicationToken);
  });

  it('counts received, rejected, unverified and duplicates in /metrics', async () => {
    const body = eventBody({ portal, id: 9 });
    await post(body);
    await post(body);
    await post(eventBody({ portal, applicationToken: 'nope' }));
    const text = (await request(listener).get('/metrics')).text;
    expect(text).toMatch(
      new RegExp(
        `b24hooks_events_received_total\\{portal="${portal.memberId}",event="ONCRMDEALUPDATE"\\} 1`,
      ),
    );
    expect(text).toMatch(/b24hooks_events_duplicate_total\{portal="[0-9a-f]+"\} 1/);
    expect(text).toMatch(/b24hooks_events_rejected_total\{reason="token_mismatch"\} 1/);
    expect(text).toContain(
      `b24hooks_events_rejected_by_portal_total{portal="${portal.memberId}",event="other"} 1`,
    );
  });

  it('keeps at most MAX_EVENT_LABELS event names as labels in /metrics, whatever names a portal posts', async () => {
    const names = Array.from({ length: MAX_EVENT_LABELS + 30 }, (_, i) => `ONFORGED${i}NAME`);
    for (let i = 0; i < names.length; i += 20) {
      await Promise.all(
        names.slice(i, i + 20).map((event, j) => post(eventBody({ portal, event, id: i + j + 1 }))),
      );
    }
    t.clock.advance(5_000);
    while ((await services.worker.runOnce()).length > 0);
    const text = (await request(listener).get('/metrics')).text;
    const labels = (metric: string) =>
      new Set(
        text
          .split('\n')
          .filter((l) => l.startsWith(`${metric}{`))
          .map((l) => /event="([^"]*)"/.exec(l)?.[1]),
      );
    for (const metric of [
      'b24hooks_events_received_total',
      'b24hooks_events_finished_total',
      'b24hooks_event_processing_seconds_count',
    ]) {
      const seen = labels(metric);
      expect(seen.size).toBeLessThanOrEqual(MAX_EVENT_LABELS + 1);
      expect(seen.has('other')).toBe(true);
    }
  });

  it("labels a finished event by its portal's bindings, though this instance did not receive it", async () => {
    // Received while the portal had not bound it yet (or by another instance): no label here.
    expect((await post(eventBody({ portal, event: 'ONCRMCOMPANYUPDATE', id: 9 }))).status).toBe(
      200,
    );
    await updatePortal(t.deps.db, portal.row.id, {
      events_bound: JSON.stringify(['ONCRMCOMPANYUPDATE']),
    });
    t.deps.portals.invalidate(portal.memberId);
    t.clock.advance(5_000);
    while ((await services.worker.runOnce()).length > 0);
    const text = (await request(listener).get('/metrics')).text;
    expect(text).toMatch(
      new RegExp(
        `b24hooks_events_finished_total\\{portal="${portal.memberId}",event="ONCRMCOMPANYUPDATE"`,
      ),
    );
  });

  it("keeps a portal's real event names as labels after a stranger's portal posted hundreds of made-up ones", async () => {
    const stranger = await seedPortal(t.deps);
    const names = Array.from({ length: MAX_EVENT_LABELS + 30 }, (_, i) => `ONFORGED${i}NAME`);
    for (let i = 0; i < names.length; i += 20) {
      await Promise.all(
        names
          .slice(i, i + 20)
          .map((event, j) => post(eventBody({ portal: stranger, event, id: i + j + 1 }))),
      );
    }
    // A default event (manifest.json), and one the portal's admin bound besides.
    await updatePortal(t.deps.db, portal.row.id, {
      events_bound: JSON.stringify(['ONCRMDEALUPDATE', 'ONCRMCOMPANYUPDATE']),
    });
    t.deps.portals.invalidate(portal.memberId);
    for (const [event, id] of [
      ['ONCRMDEALUPDATE', 7],
      ['ONCRMCOMPANYUPDATE', 8],
    ] as const)
      expect((await post(eventBody({ portal, event, id }))).status).toBe(200);
    // The offline-queue notice: bound by the app itself, never among the chosen events.
    expect((await post(eventBody({ portal, event: 'ONOFFLINEEVENT', data: {} }))).status).toBe(200);
    t.clock.advance(5_000);
    while ((await services.worker.runOnce()).length > 0);
    const text = (await request(listener).get('/metrics')).text;
    for (const event of ['ONCRMDEALUPDATE', 'ONCRMCOMPANYUPDATE', 'ONOFFLINEEVENT'])
      expect(text).toContain(
        `b24hooks_events_received_total{portal="${portal.memberId}",event="${event}"} 1`,
      );
    // What finished of them (processed, skipped or failed) keeps its name too.
    expect(text).toMatch(
      new RegExp(`b24hooks_events_finished_total\\{portal="${portal.memberId}",event="ONCRM`),
    );
    expect(text).not.toContain(
      `b24hooks_events_finished_total{portal="${portal.memberId}",event="other"`,
    );
    // The stranger's made-up names are no labels at all.
    expect(text).not.toContain('ONFORGED0NAME');
  });
});

describe('event intake IP allowlist', () => {
  const opened: TestDeps[] = [];
  afterAll(async () => {
    for (const t of opened) await t.close();
  });

  async function setup(env: Record<string, string>) {
    const t = await createTestDeps(env);
    opened.push(t);
    const services = createServices(t.deps);
    const listener = buildListener(t.deps, appParts(t.deps, services));
    const portal = await seedPortal(t.deps);
    const post = () =>
      request(listener).post(PATH).set('Content-Type', FORM).send(eventBody({ portal }));
    return { t, services, post };
  }

  it('refuses senders outside the CIDRs with 403', async () => {
    const { post } = await setup({ B24_IP_ALLOWLIST: '10.0.0.0/8' });
    expect((await post()).status).toBe(403);
  });

  it('admits senders inside the CIDRs', async () => {
    const { post } = await setup({ B24_IP_ALLOWLIST: '10.0.0.0/8,127.0.0.0/8' });
    expect((await post()).status).toBe(200);
  });

  it('follows a published sender list and keeps the last good one when a refresh fails', async () => {
    let reply: { status: number; body: string } = { status: 500, body: 'down' };
    const listServer = http.createServer((_req, res) =>
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(reply.body),
    );
    await new Promise<void>((r) => listServer.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(listServer.address() as AddressInfo).port}/app-world.json`;
    try {
      const { t, services, post } = await setup({
        B24_IP_ALLOWLIST: 'bitrix24',
        B24_IP_LIST_URLS: url,
      });
      // No list known yet (a server that cannot reach Bitrix24's): every address is admitted,
      // as the token still proves each delivery, with a warning that says so. Before, every
      // delivery was refused 403 and lost (Bitrix24 never sends an event again), unannounced.
      await services.intake.allowlist.refresh();
      expect((await post()).status).toBe(200);
      expect(t.logs.lines.some((l) => l.includes('deliveries are taken from any address'))).toBe(
        true,
      );
      reply = { status: 200, body: JSON.stringify({ nodes: ['127.0.0.1'] }) };
      await services.intake.allowlist.refresh();
      expect((await post()).status).toBe(200);
      reply = { status: 500, body: 'down' };
      await services.intake.allowlist.refresh();
      expect((await post()).status).toBe(200);
      reply = { status: 200, body: JSON.stringify({ nodes: ['192.0.2.1'] }) };
      await services.intake.allowlist.refresh();
      expect((await post()).status).toBe(403);
      // A later start that cannot fetch the list uses the one the last start kept.
      reply = { status: 500, body: 'down' };
      const again = createServices(t.deps);
      await again.intake.allowlist.refresh();
      expect(again.intake.allowlist.allows('192.0.2.1')).toBe(true);
      expect(again.intake.allowlist.allows('127.0.0.1')).toBe(false);
      // From the moment a start's list is running (the server listens after it), not after a
      // first refresh: before, the kept list came with that refresh, and until it did every
      // address was admitted.
      const third = createServices(t.deps);
      await third.intake.allowlist.start();
      try {
        expect(third.intake.allowlist.allows('127.0.0.1')).toBe(false);
        expect(third.intake.allowlist.allows('192.0.2.1')).toBe(true);
      } finally {
        third.intake.allowlist.stop();
      }
    } finally {
      await new Promise((r) => listServer.close(r));
    }
  });
});
