import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { saveMapSealed } from '../../server/rules/saved-map.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { wonDealHttpMap } from '../helpers/secret-map.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui/ui-client.js';

/**
 * A destination that refuses a request often quotes what it was given ("key … is not valid").
 * The step's error keeps the first 200 characters of the answer, and errors are shown to every
 * user of the portal: the event page, the log, the deal tab, the CSV export. Before, a
 * non-admin read the step's API key there, although the rules page masks it.
 */
const KEY = 'erp-key-5b8e1f0c7a9d';
const PASSWORD = 'pw-4c1d9e7f2a';
/** A webhook URL that is its own key (Zapier-like). */
const HOOK = 'k7Qm2xV9pL4sT8wZ';

describe('a credential the destination echoes in its refusal', () => {
  let h: UiHarness;
  let reader: UiSession;
  let dealId: string;

  beforeAll(async () => {
    h = await startUiHarness();
    const sinkHost = new URL(h.sink.url).host;
    const v = validateEventMap(
      wonDealHttpMap('Won deal: invoice', {
        name: 'invoice',
        url: `http://erp:${PASSWORD}@${sinkHost}/hooks/catch/42/${HOOK}/`,
        headers: { 'X-Erp-Key': KEY },
      }),
    );
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    const saved = await saveMapSealed(h.t.deps, h.portal.memberId, v.map);
    expect(saved.ok).toBe(true);
    h.sink.handle((req) => ({
      status: 403,
      body: `key ${String(req.headers['x-erp-key'])} (${req.headers.authorization}, password ${PASSWORD}) at ${req.url} is not valid for this account`,
    }));
    reader = await openSession(h, { userId: 2 });
    const deal = await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW' });
    dealId = deal.id;
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
  });
  afterAll(async () => {
    await h.close();
  });

  it('is not shown to a non-admin on any page nor in the export', async () => {
    // Control: the destination did get the key and quoted it.
    expect(h.sink.requests.at(-1)?.headers['x-erp-key']).toBe(KEY);
    const run = await h.t.deps.db('action_runs').where({ step_name: 'invoice' }).first();
    expect(run?.status).toBe('failed');
    expect(run?.error).toContain('HTTP 403');
    expect(run?.error).toContain('is not valid for this account');
    const basic = Buffer.from(`erp:${PASSWORD}`).toString('base64');
    const pages = [
      `/ui/events/${run.event_id}`,
      '/ui/events',
      '/ui/events.csv',
      `/ui/deal/${dealId}`,
    ];
    for (const path of pages) {
      const page = await getPage(h, path, reader.cookie);
      expect(page.status).toBe(200);
      expect(page.html).toContain('HTTP 403');
      expect(page.html).not.toContain(KEY);
      expect(page.html).not.toContain(PASSWORD);
      expect(page.html).not.toContain(basic);
      expect(page.html).not.toContain(HOOK);
    }
    // Nor stored: the run, the event and its job hold the error masked.
    const ev = await h.t.deps.db('events').where({ id: run.event_id }).first();
    const jobs = await h.t.deps.db('jobs').where({ event_id: run.event_id });
    for (const text of [run.error, ev.last_error, ...jobs.map((j) => j.last_error)]) {
      expect(String(text ?? '')).not.toContain(KEY);
      expect(String(text ?? '')).not.toContain(basic);
      expect(String(text ?? '')).not.toContain(HOOK);
    }
  });
});

/**
 * The same key quoted as a JSON string by a PHP backend (json_encode writes `/` as `\/`) or
 * percent-encoded as it appeared in a query string: still the key, and still masked.
 */
describe('a credential the destination echoes escaped', () => {
  const SLASHED = 'Zq8/Ux+3kP/w9Lm==';
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness();
    const v = validateEventMap(
      wonDealHttpMap('Won deal: ship', {
        name: 'ship',
        url: `${h.sink.url}/ship`,
        headers: { Authorization: `Bearer ${SLASHED}` },
      }),
    );
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    expect((await saveMapSealed(h.t.deps, h.portal.memberId, v.map)).ok).toBe(true);
    h.sink.handle(() => ({
      status: 401,
      body: `{"error":"token ${SLASHED.replace(/\//g, '\\/')} or ${encodeURIComponent(SLASHED)} is not valid"}`,
    }));
    const deal = await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
  });
  afterAll(async () => {
    await h.close();
  });

  it('is masked in the stored error', async () => {
    const run = await h.t.deps.db('action_runs').where({ step_name: 'ship' }).first();
    expect(run?.error).toContain('HTTP 401');
    expect(run?.error).toContain('is not valid');
    const error = String(run?.error);
    for (const shown of [SLASHED.replace(/\//g, '\\/'), encodeURIComponent(SLASHED), 'Zq8']) {
      expect(error).not.toContain(shown);
    }
  });
});
