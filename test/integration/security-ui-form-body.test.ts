import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { base, csrfOf, getPage, openSession, type UiSession } from './ui/ui-client.js';

/**
 * Found by the hostile-input scenario of the reliability suite: a page POST in another
 * content type reached the handlers with no form at all (Express 5 leaves req.body
 * undefined) when the CSRF token came in the X-CSRF-Token header, and answered 500.
 */
describe('page POSTs that are not a form', () => {
  let h: UiHarness;
  let s: UiSession;
  let csrf: string;
  beforeAll(async () => {
    h = await startUiHarness();
    s = await openSession(h);
    csrf = csrfOf((await getPage(h, '/ui/alerts', s.cookie)).html);
  });
  afterAll(async () => {
    await h.close();
  });

  const post = (path: string, headers: Record<string, string>, body?: string) =>
    fetch(`${base(h)}${path}`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'x-csrf-token': csrf, ...headers },
      body,
      redirect: 'manual',
    });

  it('are refused with 415 in any other content type, and change nothing', async () => {
    const settings = await h.t.deps.db('settings').select();
    const sent: Array<[string, string, string]> = [
      ['/ui/rules', 'application/json', '{"map":"{\\"rules\\":[]}"}'],
      ['/ui/rules/dry-run', 'text/plain', 'event=ONCRMDEALUPDATE&id=1'],
      ['/ui/alerts', 'application/octet-stream', 'telegram=12345'],
      ['/ui/replay/preview', 'multipart/form-data; boundary=x', '--x--'],
      ['/ui/subscriptions', 'text/html', '<p>save=1</p>'],
    ];
    for (const [path, type, body] of sent) {
      const res = await post(path, { 'content-type': type }, body);
      expect([path, res.status]).toEqual([path, 415]);
      expect(await res.text()).toContain('application/x-www-form-urlencoded');
    }
    expect(await h.t.deps.db('settings').select()).toEqual(settings);
  });

  it('are taken as an empty form when they have no body', async () => {
    const rules = await post('/ui/rules', {});
    expect(rules.status).toBe(400);
    expect(await rules.text()).toContain('not valid JSON');
    // Answered like any form: this portal has no alert channel of its own to test.
    const test = await post('/ui/alerts/test', {});
    expect(test.status).toBe(409);
    expect(await test.text()).toContain('id="test-refused"');
  });
});
