import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seedDeals, startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { base, csrfOf, getPage, openSession, postForm, type UiSession } from './ui-client.js';

/** Replay: confirm → progress → result. */
describe('the progress of a confirmed replay', () => {
  let h: UiHarness;
  let admin: UiSession;
  let runPath: string;
  const range = { from: '2026-11-27', to: '2026-11-27', event: 'ONCRMDEALUPDATE' };
  beforeAll(async () => {
    h = await startUiHarness();
    await seedDeals(h);
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
  });

  const progress = async (path: string, cookie = admin.cookie) => {
    const res = await fetch(`${base(h)}${path}/progress`, { headers: { cookie } });
    return { status: res.status, body: res.status === 200 ? await res.json() : undefined };
  };

  it('redirects the confirmation to a progress page that counts the waiting events', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/replay', admin.cookie)).html);
    const run = await postForm(h, '/ui/replay/run', { ...range, _csrf: csrf }, admin.cookie);
    expect(run.status).toBe(303);
    runPath = new URL(run.headers.get('location') ?? '', base(h)).pathname;
    expect(runPath).toMatch(/^\/ui\/replay\/\d+$/);

    expect((await progress(runPath)).body).toEqual({
      id: Number(runPath.split('/').pop()),
      matched: 2,
      queued: 2,
      waiting: 2,
      processed: 0,
      failed: 0,
      skipped: 0,
      other: 0,
      done: false,
    });
    const page = await getPage(h, runPath, admin.cookie);
    expect(page.status).toBe(200);
    expect(page.html).toContain('data-done="false"');
    expect(page.html).toMatch(/id="replay-waiting">2</);
    expect(page.html).toContain(`${runPath}/progress`);
  });

  it('reports the result once the worker has processed the replayed events', async () => {
    await h.drain();
    expect((await progress(runPath)).body).toMatchObject({
      queued: 2,
      waiting: 0,
      processed: 1,
      failed: 1,
      skipped: 0,
      done: true,
    });
    const page = await getPage(h, runPath, admin.cookie);
    expect(page.html).toContain('data-done="true"');
    expect(page.html).toMatch(/id="replay-processed">1</);
    expect(page.html).toMatch(/id="replay-failed">1</);
    expect(page.html).toContain('Show the failed events');
  });

  it('keeps the progress of a replay from users who are not admins', async () => {
    const reader = await openSession(h, { userId: 2 });
    expect((await getPage(h, runPath, reader.cookie)).status).toBe(403);
    expect((await progress(runPath, reader.cookie)).status).toBe(403);
    expect((await getPage(h, '/ui/replay/999999', admin.cookie)).status).toBe(404);
  });
});
