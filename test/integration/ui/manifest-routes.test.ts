import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import request from 'supertest';
import { appParts } from '../../../server/routes/index.js';
import { createServices, type Services } from '../../../server/services.js';
import { buildListener } from '../../../server/start.js';
import { createTestDeps, type TestDeps } from '../../helpers/test-deps.js';

describe('manifest.json handlers', () => {
  let t: TestDeps;
  let services: Services;
  let listener: ReturnType<typeof buildListener>;
  beforeAll(async () => {
    t = await createTestDeps();
    services = createServices(t.deps);
    listener = buildListener(t.deps, appParts(t.deps, services));
  });
  afterAll(async () => {
    await services.close(1_000);
    await t.close();
  });

  it('are each answered by a route of the app (none is a 404)', async () => {
    const m = t.deps.manifest;
    const paths = [
      m.handlers.install,
      m.handlers.app,
      m.handlers.events,
      ...m.placements.map((p) => p.handler),
    ];
    expect(paths.length).toBeGreaterThanOrEqual(4);
    for (const p of paths) {
      const res = await request(listener)
        .post(`${p}?DOMAIN=example.bitrix24.com&PROTOCOL=1&LANG=en`)
        .type('form')
        .send('member_id=unknown0000&AUTH_ID=abcdefgh12345678');
      expect([p, res.status]).not.toEqual([p, 404]);
      expect(res.status).toBeGreaterThanOrEqual(200);
    }
  });
});
