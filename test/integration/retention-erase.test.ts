import { linkEventOwners } from '../../db/stores/event-owners.js';
import { seedStepTest } from '../helpers/seed-db.js';
import { saveDestination } from '../../db/stores/destinations.js';
import {
  claimTelegramChat,
  linkTelegramChat,
  putLinkCode,
} from '../../db/stores/telegram-chats.js';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { tableColumns } from '../../db/stores/erasure.js';
import { createReplayRun } from '../../db/stores/replay-runs.js';
import { holdBatch } from '../../db/stores/offline-reservations.js';
import { insertGap, updateGap } from '../../db/stores/recovery.js';
import { recordSlaBreaches } from '../../db/stores/sla.js';
import { recordOwnWrite } from '../../db/stores/processing.js';
import { installPortal } from '../helpers/install-harness.js';
import { openFrameSession } from '../helpers/frame-session.js';
import { claimUserRenewal } from '../../db/stores/user-renewals.js';
import { runCliIn } from '../helpers/cli.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * Tables that hold nothing of any one portal, so a CLEAN uninstall has nothing to remove
 * there. Every other table must have a row of the portal before the uninstall (the test
 * seeds one) and none after: a table added later is checked without anyone listing it.
 */
const EXEMPT: Record<string, string> = {
  knex_migrations: 'which migrations ran: one row per migration, for the whole database',
  knex_migrations_lock: "knex's migration lock flag",
  heartbeats: 'when the app last ran (one row for every instance on the database)',
  key_check: 'proves TOKEN_ENCRYPTION_KEY: one row for the whole database',
  probes: "/readyz's probe write: one row for the whole database",
  rollup_recounts:
    'that the rollups wait for a recount after an upgrade: one row for the whole database',
};

type Portal = PaidDealScenario['portal'];
type Row = Record<string, unknown>;

/** What identifies a portal's rows in any table. */
interface Identity {
  id: number;
  memberId: string;
  domain: string;
  /** Ids of its events (taken before they are erased). */
  eventIds: Set<number>;
}

/**
 * Whether `row` belongs to the portal: a `portal_id` that is its id, an `…event_id` that is
 * one of its events, a destination of its own, or any text that names its member_id or
 * domain (JSON included).
 */
function belongsTo(table: string, row: Row, p: Identity): boolean {
  const domain = new RegExp(`${p.domain.replace(/[.]/g, '\\.')}(?!\\d)`);
  for (const [col, v] of Object.entries(row)) {
    if (v === null || v === undefined) continue;
    if ((col === 'portal_id' || (table === 'portals' && col === 'id')) && Number(v) === p.id) {
      return true;
    }
    if (/(^|_)event_id$/.test(col) && p.eventIds.has(Number(v))) return true;
    // The hosts its http steps named: `http:<host>#<portal id>` (server/queue/destinations.ts).
    if (table === 'destinations' && col === 'key' && String(v).endsWith(`#${p.id}`)) return true;
    if (typeof v === 'string' && (v.includes(p.memberId) || domain.test(v))) return true;
  }
  return false;
}

async function rowsOf(db: Knex, p: Identity): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of (await tableColumns(db)).keys()) {
    const rows = (await db(table).select()) as Row[];
    out[table] = rows.filter((r) => belongsTo(table, r, p)).length;
  }
  return out;
}

async function identity(s: PaidDealScenario, portal: Portal): Promise<Identity> {
  const db = s.h.t.deps.db;
  const row = (await db('portals').where('member_id', portal.memberId).first()) as Row;
  const ids = (await db('events')
    .where('portal_id', row.id as number)
    .orWhere('member_id', portal.memberId)
    .pluck('id')) as unknown[];
  return {
    id: Number(row.id),
    memberId: portal.memberId,
    domain: String(row.domain),
    eventIds: new Set(ids.map(Number)),
  };
}

describe('erasure: CLEAN uninstall and `b24hooks erase`', () => {
  let s: PaidDealScenario;
  let other: Awaited<ReturnType<typeof installPortal>>;
  let deals: string[];

  /** A deal that goes to WON: events, snapshots, matches, four action runs (SMS, comment). */
  async function paidDeal(portal: Portal, settle: () => Promise<void>): Promise<string> {
    const contact = await portal.addContact({
      NAME: 'Ann',
      PHONE: [{ VALUE: '+15550001111', VALUE_TYPE: 'WORK' }],
    });
    const deal = await portal.addDeal({
      TITLE: 'Order',
      STAGE_ID: 'NEW',
      OPPORTUNITY: '100.00',
      CONTACT_ID: contact.id,
    });
    await settle();
    await portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await settle();
    return deal.id;
  }

  /** Everything a portal leaves in the database, through the app where it can. */
  async function useThePortal(portal: Portal, settle: () => Promise<void>) {
    const { db } = s.h.t.deps;
    const now = s.h.t.clock.now().getTime();
    const ids = [await paidDeal(portal, settle), await paidDeal(portal, settle)];
    // Backlog above the threshold: the alert monitor stores the condition's state.
    await portal.addDeal({ TITLE: 'Queued 1', STAGE_ID: 'NEW' });
    await portal.addDeal({ TITLE: 'Queued 2', STAGE_ID: 'NEW' });
    await portal.whenIdle();
    await s.h.services.intake.drain();
    await s.h.services.alerts.checkOnce();
    await settle();
    // A session, and the portal's own retention saved through the settings page.
    const session = await openFrameSession(s.h.appUrl, portal);
    const res = await fetch(`${s.h.appUrl}/ui/retention`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: session.cookie },
      body: new URLSearchParams({
        _csrf: session.csrf,
        days: '14',
        failedDays: '',
        confirm: '1',
      }).toString(),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('id="saved"');
    const portalId = Number((await db('portals').where('member_id', portal.memberId).first()).id);
    // Events the `erase --entity` test below leaves alone (it erases the first deal), in id
    // order: without an order each database answers in the order of the index it picks.
    const eventIds = (await db('events')
      .where('portal_id', portalId)
      .where((w) => w.whereNull('entity_id').orWhereNot('entity_id', ids[0]!))
      .orderBy('id')
      .pluck('id')) as number[];
    // What the monitor, the UI replay, the loop guard and the REST budget store over time.
    await createReplayRun(
      db,
      {
        portal_id: portalId,
        user_id: 1,
        filter: {},
        rerun_succeeded: false,
        matched: 1,
        created_at: now,
      },
      eventIds.slice(0, 2),
    );
    await recordSlaBreaches(db, [
      {
        event_id: eventIds[eventIds.length - 1]!,
        rule_name: 'r',
        portal_id: portalId,
        member_id: portal.memberId,
        sla_seconds: 60,
        received_at: now,
        detected_at: now,
        seen: 'late',
      },
    ]);
    for (const id of ids) {
      await recordOwnWrite(db, {
        portal_id: portalId,
        entity_type: 'deal',
        entity_id: id,
        rule_name: 'r',
        depth: 1,
        written_at: now,
      });
    }
    // A record made in the kept deal (a call: its owner, learned when it was read).
    await linkEventOwners(db, portalId, eventIds[eventIds.length - 1]!, [
      { type: 'deal', id: ids[1]! },
    ]);
    // The Telegram chat its steps posted to first (server/processing/telegram-chats.ts).
    await claimTelegramChat(db, `-100${portalId}77`, portalId, now);
    // A chat it linked with a code, and a code it asked for another (server/ui/telegram-link.ts).
    await linkTelegramChat(db, `-100${portalId}78`, portalId, now);
    await putLinkCode(db, portalId, `-100${portalId}79`, {
      code_digest: 'f'.repeat(64),
      sent_at: now,
      expires_at: now + 600_000,
    });
    // A step an admin sent once from the rule builder.
    await seedStepTest(db, portalId, now);
    // A user's token pair an admin's session renewed (server/ui/user-renewal.ts).
    await claimUserRenewal(db, {
      spent: 'e'.repeat(64),
      memberId: portal.memberId,
      holder: 'instance-1',
      nowMs: now,
      leaseUntil: now + 45_000,
      createdAt: now,
      keepSince: now - 7_200_000,
    });
    await insertGap(db, {
      trigger: 'cli',
      started_at: now - 1000,
      ended_at: now,
      member_id: portal.memberId,
      requested_by: 'cli',
      now,
    });
    // A circuit breaker of the portal's REST endpoint, as after failed calls.
    const domain = String((await db('portals').where('id', portalId).first('domain')).domain);
    for (const key of [`rest:${domain}`, `http:erp.example#${portalId}`]) {
      await saveDestination(db, {
        key,
        state: 'closed',
        failures: 2,
        cooldown_ms: 0,
        opened_at: null,
        retry_at: null,
        last_error: 'timed out',
        updated_at: now,
      });
    }
    // An offline batch a drain reserved and has not settled (server/recovery/offline.ts).
    await holdBatch(db, portalId, { processId: 'f'.repeat(32), error: false }, now);
    // On PostgreSQL the REST calls above already reserved slots in the shared budget.
    await db('rate_buckets')
      .insert({ key: portal.memberId, level: 1, at: now })
      .onConflict('key')
      .ignore();
    return ids;
  }

  beforeAll(async () => {
    s = await startPaidDealScenario(undefined, { ALERT_BACKLOG_THRESHOLD: '1' });
    deals = await useThePortal(s.portal, s.drain);
    other = await installPortal(s.h);
    await useThePortal(other.portal, other.settle);
    // A sweep of every portal names both in its per-portal lines.
    const now = s.h.t.clock.now().getTime();
    const gap = await insertGap(s.h.t.deps.db, {
      trigger: 'start',
      started_at: now - 5000,
      ended_at: now,
      member_id: null,
      requested_by: null,
      now,
    });
    await updateGap(s.h.t.deps.db, gap, {
      status: 'done',
      portals: [s.portal, other.portal].map(
        (p) => ({ memberId: p.memberId, status: 'done', listed: 1, enqueued: 0 }) as never,
      ),
      finishedAt: now,
    });
  }, 120_000);

  afterAll(async () => {
    await s?.close();
  });

  it('erase --entity removes one record’s events, runs, snapshot and writes, and nothing else', async () => {
    const { db } = s.h.t.deps;
    const [gone, kept] = deals as [string, string];
    const p = await identity(s, s.portal);
    const rowsOfDeal = async (id: string) => {
      const events = (await db('events')
        .where({ portal_id: p.id, entity_type: 'deal', entity_id: id })
        .pluck('id')) as number[];
      const n = async (table: string, q: Knex.QueryBuilder) => [
        table,
        Number(((await q.count({ n: '*' }).first()) as Row).n),
      ];
      return Object.fromEntries([
        await n('events', db('events').whereIn('id', events)),
        await n('jobs', db('jobs').whereIn('event_id', events)),
        await n('action_runs', db('action_runs').whereIn('event_id', events)),
        await n('rule_matches', db('rule_matches').whereIn('event_id', events)),
        await n(
          'entity_snapshots',
          db('entity_snapshots').where({ portal_id: p.id, entity_type: 'deal', entity_id: id }),
        ),
      ]) as Record<string, number>;
    };
    const before = await rowsOfDeal(gone);
    const keptBefore = await rowsOfDeal(kept);
    expect(before).toMatchObject({ action_runs: 4, entity_snapshots: 1 });
    expect(before.events).toBeGreaterThanOrEqual(2);

    const r = await runCliIn(s.h.t, [
      'erase',
      '--portal',
      p.memberId,
      '--entity',
      `deal:${gone}`,
      '--json',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { entity: string; tables: Record<string, number> };
    expect(out.entity).toBe(`deal:${gone}`);
    // The builder's test sends go too: they quote the record they were sent with, and which
    // record that was is not kept.
    expect(out.tables).toMatchObject({ ...before, own_writes: 1, step_tests: 1 });
    expect(Object.values(await rowsOfDeal(gone)).every((n) => n === 0)).toBe(true);
    expect(await rowsOfDeal(kept)).toEqual(keptBefore);
  });

  it('erase refuses bad usage and an unknown portal with a reason', async () => {
    expect((await runCliIn(s.h.t, ['erase'])).code).toBe(2);
    const bad = await runCliIn(s.h.t, ['erase', '--portal', s.portal.memberId, '--entity', 'deal']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('TYPE:ID');
    // A type events are never stored under erased nothing, and said so with exit 0.
    for (const ref of ['deals:3', 'order:4', 'dynamic:x:5', 'deal:42x', 'deal:0']) {
      const typo = await runCliIn(s.h.t, ['erase', '--portal', s.portal.memberId, '--entity', ref]);
      expect([ref, typo.code, typo.out]).toEqual([ref, 2, '']);
      expect(typo.err).toContain('deal, lead, contact, company');
    }
    const smart = await runCliIn(s.h.t, [
      'erase',
      '--portal',
      s.portal.memberId,
      '--entity',
      'dynamic:128:7',
    ]);
    expect(smart.code).toBe(0); // control: a smart-process item is a known type
    const unknown = await runCliIn(s.h.t, ['erase', '--portal', 'nobody']);
    // Bad usage, as for rules, replay and recover sweep.
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain('no portal');
  });

  it('uninstall with CLEAN leaves no row of the portal in any table but its tombstone, and the other portal’s rows', async () => {
    const { db } = s.h.t.deps;
    const p = await identity(s, s.portal);
    const q = await identity(s, other.portal);
    // A test send again: the `erase --entity` runs above took the portal's (see there).
    await seedStepTest(db, p.id, s.h.t.clock.now().getTime());
    const before = await rowsOf(db, p);
    const otherBefore = await rowsOf(db, q);
    // The control: every table that is not exempt holds a row of the portal to erase.
    const empty = Object.entries(before)
      .filter(([table, n]) => n === 0 && !(table in EXEMPT))
      .map(([table]) => table);
    expect({ tablesWithoutARowOfThePortal: empty }).toEqual({ tablesWithoutARowOfThePortal: [] });

    // Its member_id labels series in /metrics too (received, finished, backlog …).
    const metrics = () => s.h.t.deps.metrics.registry.metrics();
    expect(await metrics()).toContain(`portal="${p.memberId}"`);

    const deliveries = await s.portal.uninstall({ clean: true });
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    await s.h.services.intake.drain();
    await s.h.services.worker.drain();
    expect(await metrics()).not.toContain(p.memberId);
    expect(await metrics()).toContain(`portal="${q.memberId}"`);
    // The portal row stays as a tombstone (uninstalled portals stay listed by `npx b24hooks
    // portals`) with its name, domain and status only: no token, digest, endpoint or install
    // detail.
    const tombstone = (await db('portals').where('id', p.id).first()) as Row;
    const kept = Object.entries(tombstone)
      .filter(([, v]) => v !== null)
      .map(([k]) => k)
      .sort();
    expect(kept).toEqual(
      [
        'auth_mode',
        'domain',
        'id',
        'installed_at',
        'member_id',
        'status',
        'uninstalled_at',
        'updated_at',
      ].filter((k) => k in tombstone),
    );
    expect(tombstone.status).toBe('uninstalled');

    const after = await rowsOf(db, p);
    const left = Object.entries(after).filter(([, n]) => n > 0);
    expect(left).toEqual([['portals', 1]]);
    // The other portal keeps every row (the shared sweep row included).
    const otherAfter = await rowsOf(db, q);
    expect(otherAfter).toEqual(otherBefore);
    const gap = (await db('recovery_gaps').whereNull('member_id').first()) as Row;
    expect(JSON.parse(String(gap.portals)).map((x: Row) => x.memberId)).toEqual([
      other.portal.memberId,
    ]);
  });
});
