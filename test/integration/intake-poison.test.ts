import request from 'supertest';
import { afterEach, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { appParts } from '../../server/routes/index.js';
import { createServices, type Services } from '../../server/services.js';
import { buildListener } from '../../server/start.js';
import { parseEventBody } from '../../server/intake/event-body.js';
import { entityOf } from '../../server/intake/entity.js';
import { dedupeKey } from '../../server/intake/intake.js';
import { isPg } from '../../db/connect.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { eventBody, seedPortal, type TestPortal } from '../helpers/event-builder.js';

const FORM = 'application/x-www-form-urlencoded';

/**
 * Deliveries are written in group commits: one transaction for every delivery that waited
 * while the one before was written. A row the database refuses must not take a stranger's
 * batch-mates with it: Bitrix24 never re-sends the genuine delivery answered 503.
 */
describe('group commit against a stranger’s row the database refuses', () => {
  let t: TestDeps;
  let services: Services;
  let listener: ReturnType<typeof buildListener>;
  let portal: TestPortal;

  async function setUp(env: Record<string, string> = {}) {
    t = await createTestDeps(env);
    services = createServices(t.deps);
    listener = buildListener(t.deps, appParts(t.deps, services));
    portal = await seedPortal(t.deps);
  }
  afterEach(async () => {
    await services.intake.drain();
    await t.close();
  });

  const post = (body: string, headers: Record<string, string> = {}) =>
    request(listener).post('/b24/events').set('Content-Type', FORM).set(headers).send(body);

  /**
   * Holds the intake's writer on a delivery (another instance's uncommitted copy of it), so
   * that the next deliveries wait and are written together in one batch.
   */
  async function holdWriter(): Promise<{ held: Promise<number>; release(): Promise<void> }> {
    const body = eventBody({ portal, id: 1, ts: 1000 });
    const d = parseEventBody(body);
    const dataJson = JSON.stringify(d.data);
    const trx: Knex.Transaction = await t.deps.db.transaction();
    await trx('events').insert({
      portal_id: portal.row.id,
      member_id: portal.memberId,
      event: d.event,
      status: 'received',
      received_at: Date.now(),
      dedupe_key: dedupeKey(d, dataJson, entityOf(d.event, d.data).id),
      source: 'online',
    });
    const held = post(body).then((r) => r.status);
    await new Promise((r) => setTimeout(r, 300));
    return { held, release: () => trx.commit().then(() => undefined) };
  }

  /** A forged delivery and a genuine one, written in one batch; the genuine one's status. */
  async function genuineBesideForged(forged: string, headers: Record<string, string> = {}) {
    const writer = await holdWriter();
    const forgedRes = post(forged, headers).then((r) => r.status);
    const genuine = post(eventBody({ portal, id: 2, ts: 1001 })).then((r) => r.status);
    await new Promise((r) => setTimeout(r, 300));
    await writer.release();
    expect(await writer.held).toBe(200);
    return { genuine: await genuine, forged: await forgedRes };
  }

  it('stores a genuine delivery batched with a forged one whose event_handler_id holds a NUL (PostgreSQL)', async () => {
    await setUp();
    if (!isPg(t.deps.db)) return;
    const forged = eventBody({ portal: { ...portal, memberId: 'nobody' } }).replace(
      'event_handler_id=58',
      'event_handler_id=%00',
    );
    expect(forged).toContain('event_handler_id=%00');
    const { genuine, forged: refused } = await genuineBesideForged(forged);
    expect(genuine).toBe(200);
    expect(refused).toBeGreaterThanOrEqual(400);
    expect(refused).toBeLessThan(500);
    const stored = await t.deps.db('events').where({ portal_id: portal.row.id, ts: 1001 });
    expect(stored).toHaveLength(1);
  });

  it('stores a genuine delivery batched with a forged one from a long X-Forwarded-For (PostgreSQL, TRUST_PROXY=true)', async () => {
    await setUp({ TRUST_PROXY: 'true' });
    if (!isPg(t.deps.db)) return;
    const forged = eventBody({ portal: { ...portal, memberId: 'nobody' } });
    const { genuine } = await genuineBesideForged(forged, { 'X-Forwarded-For': 'x'.repeat(100) });
    expect(genuine).toBe(200);
    const stored = await t.deps.db('events').where({ portal_id: portal.row.id, ts: 1001 });
    expect(stored).toHaveLength(1);
  });

  it('stores a genuine delivery batched with a forged one naming a dynamic type id too long for its column (PostgreSQL)', async () => {
    await setUp();
    if (!isPg(t.deps.db)) return;
    const forged = eventBody({
      portal: { ...portal, memberId: 'nobody' },
      event: 'ONCRMDYNAMICITEMADD',
      data: { FIELDS: { ID: '1', ENTITY_TYPE_ID: '9'.repeat(32) } },
    });
    const { genuine } = await genuineBesideForged(forged);
    expect(genuine).toBe(200);
    const stored = await t.deps.db('events').where({ portal_id: portal.row.id, ts: 1001 });
    expect(stored).toHaveLength(1);
  });

  it('writes the batch row by row when the database refuses any one row (PostgreSQL)', async () => {
    await setUp();
    if (!isPg(t.deps.db)) return;
    // A refusal the intake cannot foresee (the values above are now refused before the
    // write): a constraint of this test's own.
    await t.deps.db.raw(
      "alter table events add constraint test_refused check (event_handler_id is distinct from '777')",
    );
    const forged = eventBody({ portal: { ...portal, memberId: 'nobody' } }).replace(
      'event_handler_id=58',
      'event_handler_id=777',
    );
    const { genuine, forged: refused } = await genuineBesideForged(forged);
    expect(genuine).toBe(200);
    expect(refused).toBeGreaterThanOrEqual(400);
    const stored = await t.deps.db('events').where({ portal_id: portal.row.id, ts: 1001 });
    expect(stored).toHaveLength(1);
    expect((await request(listener).get('/healthz')).status).toBe(200);
  });

  it('keeps /healthz at 200 when the database refuses a stranger’s row (PostgreSQL)', async () => {
    await setUp();
    if (!isPg(t.deps.db)) return;
    const forged = eventBody({ portal: { ...portal, memberId: 'nobody' } }).replace(
      'event_handler_id=58',
      'event_handler_id=%00',
    );
    // Refused before any write now (event-body.ts); the storage is fine either way.
    expect((await post(forged)).status).toBe(400);
    expect((await request(listener).get('/healthz')).status).toBe(200);
  });
});
