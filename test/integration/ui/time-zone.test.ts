import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seedDeals, startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui-client.js';

/**
 * The test clock stands at 2026-11-27 10:00 UTC: 2026-11-28 00:00 for a user in
 * Pacific/Kiritimati (UTC+14), 13:00 on the 27th on the emulated portal (+03:00).
 */
describe("times in the user's Bitrix24 time zone", () => {
  let h: UiHarness;
  let islander: UiSession;
  let manager: UiSession;
  let received: number;
  beforeAll(async () => {
    h = await startUiHarness({
      portal: {
        users: [
          { id: 1, admin: true, name: 'Admin', timeZone: 'Pacific/Kiritimati' },
          { id: 2, admin: false, name: 'Manager' },
        ],
      },
    });
    const deals = await seedDeals(h);
    islander = await openSession(h, { userId: 1 });
    manager = await openSession(h, { userId: 2 });
    received = Number(
      (await h.t.deps.db('events').where({ entity_id: deals.won }).first('received_at'))
        .received_at,
    );
  });
  afterAll(async () => {
    await h.close();
  });

  const wall = (ms: number, offsetH: number) =>
    new Date(ms + offsetH * 3600_000).toISOString().replace('T', ' ').slice(0, 19);
  /** The cell as the log writes it: the instant in UTC, the day kept whole at 600 px. */
  const cell = (ms: number, offsetH: number, label: string) => {
    const [day, time] = wall(ms, offsetH).split(' ');
    const iso = new Date(ms).toISOString();
    return `<td><time datetime="${iso}"><span class="day">${day}</span> <span class="hour">${time} <span class="zone">(${label})</span></span></time></td>`;
  };

  it("shows times in the profile's time zone, labelled with its offset", async () => {
    const page = await getPage(h, '/ui/events', islander.cookie);
    expect(page.html).toContain(cell(received, 14, 'UTC+14'));
  });

  it("falls back to the portal's offset (server.time) for a user without a time zone", async () => {
    const page = await getPage(h, '/ui/events', manager.cookie);
    expect(page.html).toContain(cell(received, 3, 'UTC+3'));
  });

  it("reads the log's dates in the user's time zone", async () => {
    const today = await getPage(h, '/ui/events?from=2026-11-28&to=2026-11-28', islander.cookie);
    expect(today.html.match(/<tr data-id=/g)?.length).toBeGreaterThan(3);
    const utcDay = await getPage(h, '/ui/events?from=2026-11-27&to=2026-11-27', islander.cookie);
    expect(utcDay.html).toContain('id="no-events"');
    const portalDay = await getPage(h, '/ui/events?from=2026-11-27&to=2026-11-27', manager.cookie);
    expect(portalDay.html.match(/<tr data-id=/g)?.length).toBeGreaterThan(3);
  });

  it("counts the 7-day chart's days from the user's midnight and labels them with the user's dates", async () => {
    const stored = Number((await h.t.deps.db('events').count({ n: '*' }).first())?.n);
    const week = async (cookie: string) => {
      const page = await getPage(h, '/ui', cookie);
      const data = JSON.parse(
        /<script type="application\/json" id="chart-data">([^<]*)<\/script>/.exec(page.html)![1]!,
      ) as { week: { starts: number[]; received: number[] } };
      const labels = /"week":(\[[^\]]*\])/.exec(/var labels = (\{.*\});/.exec(page.html)![1]!)![1]!;
      return { ...data.week, labels: JSON.parse(labels) as string[] };
    };
    // For the islander it is 00:00 on the 28th: every event is today's, the 28th's.
    const islands = await week(islander.cookie);
    expect(islands.labels.at(-1)).toBe('11-28');
    expect(islands.starts.at(-1)).toBe(Date.UTC(2026, 10, 27, 10, 0));
    expect(islands.received.at(-1)).toBe(stored);
    expect(islands.received.slice(0, -1).every((n) => n === 0)).toBe(true);
    // For the manager (UTC+3) the same events are the 27th's, from 21:00 UTC on the 26th.
    const moscow = await week(manager.cookie);
    expect(moscow.labels.at(-1)).toBe('11-27');
    expect(moscow.starts.at(-1)).toBe(Date.UTC(2026, 10, 26, 21, 0));
    expect(moscow.received.at(-1)).toBe(stored);
  });

  it('exports times as ISO 8601 with the offset', async () => {
    const csv = await getPage(h, '/ui/events.csv', islander.cookie);
    expect(csv.html).toContain(`,${wall(received, 14).replace(' ', 'T')}+14:00,`);
  });
});
