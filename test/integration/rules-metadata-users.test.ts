import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createMetadataCache } from '../../server/rules/metadata.js';
import type { EmulatedUser } from '../emulator/types.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';

/**
 * user.get answers 50 users a page whatever is asked (DOCS api-reference/user/user-get.md,
 * `start`); the emulator gave them all, and the builder offered only the first 50 on a real
 * portal (a fidelity review).
 */
describe("the builder's users on a portal with more than 50", () => {
  let h: UiHarness;
  const users: EmulatedUser[] = Array.from({ length: 130 }, (_, i) => ({
    id: i + 1,
    admin: i === 0,
    name: `User${i + 1}`,
    lastName: 'Test',
    // Dismissed users are not offered.
    ...(i % 40 === 39 ? { active: false } : {}),
  }));
  beforeAll(async () => {
    h = await startUiHarness({ portal: { users } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('reads every active user, 50 a page, in one more batch', async () => {
    const portal = (await h.t.deps.portals.get(h.portal.memberId))!;
    const batches = () => h.portal.calls.filter((c) => c.method === 'batch').length;
    const before = batches();
    const m = await createMetadataCache(h.t.deps.bitrix, { now: () => 1_000 }).get(portal);
    const active = users.filter((u) => u.active !== false);
    expect(active).toHaveLength(127);
    expect(m.users.map((u) => u.id)).toEqual(active.map((u) => String(u.id)));
    expect(m.users.at(-1)).toEqual({ id: '130', name: 'User130 Test' });
    // Fields, pipelines and the first page; the second pipeline's stages; the other pages.
    expect(batches() - before).toBe(3);
    // Control: each answer held at most 50.
    const pages = h.portal.calls.filter((c) => c.method === 'user.get');
    expect(pages.map((c) => c.params.start ?? '0')).toEqual(['0', '50', '100']);
  });
});
