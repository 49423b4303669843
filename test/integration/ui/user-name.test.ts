import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession } from './ui-client.js';

/** The page header names the user as Bitrix24 does (`profile` NAME and LAST_NAME). */
describe("the user's name in the page header", () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness({
      portal: {
        users: [
          { id: 1, admin: true, name: 'Ann', lastName: 'Smith <Sales>' },
          { id: 2, admin: false, name: '' },
        ],
      },
    });
  });
  afterAll(async () => {
    await h.close();
  });

  const who = (html: string) => /<span class="who">([\s\S]*?)<\/span>\s*<\/nav>/.exec(html)?.[1];

  it('names the user, escaped, and says the role', async () => {
    const authId = h.portal.issueUserAuth(1).accessToken;
    const s = await openSession(h, { userId: 1, authId });
    const page = await getPage(h, '/ui', s.cookie);
    expect(who(page.html)).toMatch(
      / · <bdi translate="no">Ann Smith &lt;Sales&gt;<\/bdi> · administrator$/,
    );
    // Let in again on the portal's last answer (no new `profile` call): the same name.
    const profiles = () => h.portal.calls.filter((c) => c.method === 'profile').length;
    const before = profiles();
    const again = await openSession(h, { userId: 1, authId });
    expect(profiles()).toBe(before);
    expect(who((await getPage(h, '/ui', again.cookie)).html)).toMatch(
      / · <bdi translate="no">Ann Smith &lt;Sales&gt;<\/bdi> · /,
    );
  });

  it('says "user N" for a user Bitrix24 gives no name', async () => {
    const s = await openSession(h, { userId: 2 });
    const page = await getPage(h, '/ui', s.cookie);
    expect(who(page.html)).toMatch(/ · user 2 · read only$/);
  });
});
