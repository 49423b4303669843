import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui/ui-client.js';

interface ItemAnswer {
  fields: Array<{ code: string }>;
  categories: Array<{ id: number; name: string; isDefault: boolean }>;
  stages: Array<{ id: string; name: string; categoryId: number; semantics: string }>;
  missing: string[];
}

describe("the rule builder's metadata endpoint for a smart process", () => {
  let h: UiHarness;
  let admin: UiSession;
  const batches = () => h.portal.calls.filter((c) => c.method === 'batch');

  beforeAll(async () => {
    h = await startUiHarness();
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('returns its stages grouped by pipeline, read in two batches and then cached', async () => {
    const before = batches().length;
    const answers = await Promise.all(
      Array.from({ length: 5 }, () =>
        getPage(h, '/ui/rules/builder/metadata?item=128', admin.cookie),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(5).fill(200));
    const m = JSON.parse(answers[0]!.html) as ItemAnswer;
    expect(m.missing).toEqual([]);
    expect(m.fields.map((f) => f.code)).toContain('stageId');
    expect(m.categories).toEqual([
      { id: 1280, name: 'General', isDefault: true },
      { id: 1281, name: 'Partners', isDefault: false },
    ]);
    const grouped = Object.fromEntries(
      m.categories.map((c) => [
        c.name,
        m.stages.filter((s) => s.categoryId === c.id).map((s) => `${s.id} ${s.name}`),
      ]),
    );
    expect(grouped).toEqual({
      General: [
        'DT128_1280:NEW Start',
        'DT128_1280:PREPARATION Preparation',
        'DT128_1280:SUCCESS Success',
        'DT128_1280:FAIL Failure',
      ],
      Partners: [
        'DT128_1281:NEW Start',
        'DT128_1281:PREPARATION Negotiation',
        'DT128_1281:SUCCESS Success',
        'DT128_1281:FAIL Failure',
      ],
    });
    // Every stage belongs to a listed pipeline.
    expect(m.stages).toHaveLength(8);
    expect(m.stages.find((s) => s.id === 'DT128_1280:FAIL')?.semantics).toBe('F');

    // Five page loads, one load: the fields and pipelines, then every pipeline's stages in
    // one batch, asked by the list names Bitrix24 documents.
    const calls = batches().slice(before);
    expect(calls).toHaveLength(2);
    expect(JSON.stringify(calls[1])).toContain('DYNAMIC_128_STAGE_1280');
    expect(JSON.stringify(calls[1])).toContain('DYNAMIC_128_STAGE_1281');
    await getPage(h, '/ui/rules/builder/metadata?item=128', admin.cookie);
    expect(batches().length - before).toBe(2);
  });

  it('a failed stage list leaves the fields usable and names what is missing', async () => {
    // Control: the smart process 130 is read afresh (its own cache entry).
    const before = batches().length;
    h.portal.failNext('crm.status.list', {
      status: 403,
      error: 'ACCESS_DENIED',
      description: 'no',
    });
    const r = await getPage(h, '/ui/rules/builder/metadata?item=130', admin.cookie);
    expect(r.status).toBe(200);
    const m = JSON.parse(r.html) as ItemAnswer;
    expect(batches().length - before).toBe(2);
    expect(m.fields.map((f) => f.code)).toContain('stageId');
    expect(m.missing).toEqual(['c1300']);
    expect(m.stages.every((s) => s.categoryId === 1301)).toBe(true);
    expect(m.stages).toHaveLength(4);
  });
});

/**
 * The builder's metadata (fields, pipelines, stages, the portal's users) is cached per portal
 * for 5 minutes. An uninstall with CLEAN keeps the portal row (a tombstone with the same id),
 * so a reinstall within those minutes was served what the erased installation had read.
 */
describe('the metadata cache across an uninstall with CLEAN and a reinstall', () => {
  let h: UiHarness;
  /** Loads of the portal's metadata: batches that read the deal fields. */
  const batches = () =>
    h.portal.calls.filter(
      (c) => c.method === 'batch' && JSON.stringify(c).includes('crm.deal.fields'),
    ).length;

  beforeAll(async () => {
    h = await startUiHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('reads the reinstalled portal afresh instead of serving what it read before', async () => {
    const before = await openSession(h);
    expect((await getPage(h, '/ui/rules/builder/metadata', before.cookie)).status).toBe(200);
    const read = batches();
    // Control: within the installation, the cache answers.
    expect((await getPage(h, '/ui/rules/builder/metadata', before.cookie)).status).toBe(200);
    expect(batches()).toBe(read);

    await h.portal.uninstall({ clean: true });
    await h.drain();
    h.t.clock.advance(60_000);
    expect((await h.portal.install()).status).toBe(200);
    await h.portal.finishInstall();
    await h.drain();

    const after = await openSession(h);
    expect((await getPage(h, '/ui/rules/builder/metadata', after.cookie)).status).toBe(200);
    expect(batches()).toBe(read + 1);
  });
});
