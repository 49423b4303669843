import type session from 'express-session';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { KnexSessionStore } from '../../db/stores/sessions.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

describe('the session store', () => {
  let t: TestDeps;
  let store: KnexSessionStore;
  beforeEach(async () => {
    t = await createTestDeps();
    store = new KnexSessionStore(t.deps.db, { now: () => t.clock.now().getTime() });
  });
  afterEach(async () => {
    await t.close();
  });

  const HOUR = 3600_000;
  const MINUTE = 60_000;
  const sess = { cookie: { originalMaxAge: HOUR } } as unknown as session.SessionData;
  const call = (f: (cb: (err?: unknown) => void) => void) =>
    new Promise<void>((resolve, reject) => f((err) => (err ? reject(err) : resolve())));
  const storedExpiry = async () =>
    Number(
      ((await t.deps.db('sessions').where({ sid: 's1' }).first()) as { expires_at: number })
        .expires_at,
    );

  it('moves the stored expiry on a touch only once it lags a minute behind', async () => {
    await call((cb) => store.set('s1', sess, cb));
    const first = await storedExpiry();
    expect(first).toBe(t.clock.now().getTime() + HOUR);
    // A page view half a minute later: no write (a commit would be an fsync on the main thread).
    t.clock.advance(MINUTE / 2);
    await call((cb) => store.touch('s1', sess, cb));
    expect(await storedExpiry()).toBe(first);
    // The control: a minute and a half after it was stored, the touch writes.
    t.clock.advance(MINUTE);
    await call((cb) => store.touch('s1', sess, cb));
    expect(await storedExpiry()).toBe(t.clock.now().getTime() + HOUR);
    // The session is still there for a page view just before the new expiry.
    t.clock.advance(HOUR - 1000);
    const got = await new Promise<session.SessionData | null | undefined>((resolve, reject) =>
      store.get('s1', (err, s) => (err ? reject(err) : resolve(s))),
    );
    expect(got).toBeTruthy();
  });
});
