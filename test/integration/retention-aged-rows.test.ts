import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { saveDestination, type DestinationRow } from '../../db/stores/destinations.js';
import { holdBatch } from '../../db/stores/offline-reservations.js';
import { reserveLinkCode } from '../../db/stores/telegram-chats.js';
import { runCliIn } from '../helpers/cli.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const DAY = 86_400_000;

/**
 * Tables that grew for good under steady use: every host a step ever failed at kept its
 * breaker row (with the last error, which may quote an event's data), and every Telegram link
 * code nobody typed back stayed after it expired. With RETENTION_DAYS set, a pass removes
 * those older than the cut-off and keeps what is still in use.
 */
describe('retention of breaker rows, link codes and unsettled offline batches', () => {
  let t: TestDeps;
  let p: TestPortal;

  const breaker = (key: string, state: 'closed' | 'open', at: number): DestinationRow => ({
    key,
    state,
    failures: state === 'open' ? 5 : 2,
    cooldown_ms: state === 'open' ? 30_000 : 0,
    opened_at: state === 'open' ? at : null,
    retry_at: state === 'open' ? at + 30_000 : null,
    last_error: 'HTTP 503 from host: cannot store Ann Smith',
    updated_at: at,
  });

  /**
   * A day of use: a step fails at a new host, an admin asks a code for a new chat, an offline
   * batch is left unsettled.
   */
  async function aDay(day: number) {
    const now = t.clock.now().getTime();
    await holdBatch(t.deps.db, p.row.id, { processId: `batch${day}`, error: false }, now);
    await saveDestination(t.deps.db, breaker(`http:erp${day}.example#${p.row.id}`, 'closed', now));
    await reserveLinkCode(
      t.deps.db,
      p.row.id,
      `-100${day}`,
      { code_digest: `${day}`.padStart(64, '0'), sent_at: now, expires_at: now + 600_000 },
      now,
    );
    t.clock.advance(DAY);
  }

  beforeAll(async () => {
    t = await createTestDeps({ RETENTION_DAYS: '30' });
    p = await seedPortal(t.deps);
    // Down for a long time: jobs wait for it, so it stays however old.
    await saveDestination(
      t.deps.db,
      breaker('sms:gateway.example', 'open', t.clock.now().getTime()),
    );
    for (let day = 0; day < 40; day++) await aDay(day);
  });

  afterAll(async () => {
    await t?.close();
  });

  it('prune --dry-run counts the closed breakers and expired codes older than the cut-off', async () => {
    const r = await runCliIn(t, ['prune', '--dry-run', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { shared: Record<string, number> };
    // Days 0–9 are more than 30 days old (the clock stands at day 40).
    expect(out.shared).toMatchObject({
      destinations: 10,
      telegram_link_codes: 10,
      offline_reservations: 10,
    });
  });

  it('a pass removes them and keeps the recent ones and the open breaker', async () => {
    const r = await runCliIn(t, ['prune', '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.out) as { shared: Record<string, number> }).shared).toMatchObject({
      destinations: 10,
      telegram_link_codes: 10,
      offline_reservations: 10,
    });
    const { db } = t.deps;
    const keys = (await db('destinations').orderBy('key').pluck('key')) as string[];
    expect(keys).toHaveLength(31);
    expect(keys).toContain('sms:gateway.example');
    expect(keys).not.toContain(`http:erp9.example#${p.row.id}`);
    expect(keys).toContain(`http:erp10.example#${p.row.id}`);
    const chats = (await db('telegram_link_codes').pluck('chat_id')) as string[];
    expect(chats.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `-100${i + 10}`).sort());
  });

  it('under steady use the tables stay the size of the retention window', async () => {
    for (let day = 40; day < 70; day++) {
      await aDay(day);
      await runCliIn(t, ['prune']);
    }
    const { db } = t.deps;
    const n = async (table: string) =>
      Number(((await db(table).count({ n: '*' }).first()) as { n: unknown }).n);
    expect(await n('destinations')).toBe(31);
    expect(await n('telegram_link_codes')).toBe(30);
    expect(await n('offline_reservations')).toBe(30);
  });
});
