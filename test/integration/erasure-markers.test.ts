import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { isSqlite } from '../../db/connect.js';
import { tableColumns } from '../../db/stores/erasure.js';
import type { EventMap } from '../../server/rules/model.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { runCliIn } from '../helpers/cli.js';
import { installPortal } from '../helpers/install-harness.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.js';

/**
 * Erasure as a data-protection officer checks it: every portal's records carry a marker
 * string (a contact's name, deals' titles) that flows through the real paths into snapshots,
 * step requests and responses, error texts, circuit breakers and alert texts. After an
 * erasure no column of any table names the erased marker, while the other portal's markers
 * stay where they were.
 */

type Portal = PaidDealScenario['portal'];

/** Rows per table with any column containing `needle`. */
async function rowsNaming(db: Knex, needle: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of (await tableColumns(db)).keys()) {
    const rows = (await db(table).select()) as Array<Record<string, unknown>>;
    const n = rows.filter((r) =>
      Object.values(r).some((v) =>
        v === null || v === undefined
          ? false
          : (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)).includes(needle),
      ),
    ).length;
    if (n > 0) out[table] = n;
  }
  return out;
}

function markerMap(urls: { accounting: string; logistics: string }): EventMap {
  const v = validateEventMap({
    rules: [
      {
        name: 'New deal to the ERP',
        on: ['ONCRMDEALADD'],
        when: [{ field: 'TITLE', changed: true }],
        actions: [
          {
            type: 'http',
            name: 'erp',
            method: 'POST',
            url: `${urls.accounting}/erp`,
            body: { title: '{{deal.TITLE}}', who: '{{contact.NAME}}' },
          },
          {
            type: 'sms',
            name: 'sms',
            to: '{{contact.PHONE}}',
            text: 'Hello {{contact.NAME}}: {{deal.TITLE}}',
          },
        ],
      },
      {
        name: 'New deal to the broken CRM',
        on: ['ONCRMDEALADD'],
        actions: [
          {
            type: 'http',
            name: 'broken',
            method: 'POST',
            url: `${urls.logistics}/broken`,
            body: { title: '{{deal.TITLE}}' },
          },
        ],
      },
    ],
  });
  if (!v.ok) throw new Error(JSON.stringify(v.errors));
  return v.map;
}

describe('erasure leaves no trace of the erased marker in any table', () => {
  let s: PaidDealScenario;
  let smtp: SmtpSink;
  let other: Awaited<ReturnType<typeof installPortal>>;
  const deals = new Map<string, string[]>();
  const A = 'Qv8Amark';
  const B = 'Qv8Bmark';

  async function useThePortal(portal: Portal, marker: string, settle: () => Promise<void>) {
    const contact = await portal.addContact({
      NAME: `${marker}-Ann`,
      PHONE: [{ VALUE: '+15550001111', VALUE_TYPE: 'WORK' }],
    });
    const ids: string[] = [];
    for (const n of ['d1', 'd2']) {
      const deal = await portal.addDeal({
        TITLE: `${marker}-${n}-title`,
        STAGE_ID: 'NEW',
        OPPORTUNITY: '100.00',
        CONTACT_ID: contact.id,
      });
      ids.push(deal.id);
    }
    await settle();
    deals.set(marker, ids);
  }

  beforeAll(async () => {
    smtp = await startSmtpSink();
    s = await startPaidDealScenario(markerMap, {
      MAX_ATTEMPTS: '1',
      SMTP_URL: smtp.url,
      ALERT_EMAIL_TO: 'ops@example.org',
    });
    // The ERP echoes what it got; the broken CRM answers 503 naming the title it refused.
    s.accounting.handle((req) => ({ status: 200, body: { received: JSON.parse(req.body) } }));
    s.logistics.handle((req) => ({
      status: 503,
      body: { error: `cannot store ${String((JSON.parse(req.body) as { title: string }).title)}` },
    }));
    await useThePortal(s.portal, A, s.drain);
    other = await installPortal(s.h);
    await useThePortal(other.portal, B, other.settle);
    // The failed-events digest names the last errors, with the titles in them.
    await s.h.services.alerts.checkOnce();
    await s.drain();
  }, 120_000);

  afterAll(async () => {
    await s?.close();
    await smtp?.close();
  });

  it('the markers reached the tables the erasure must clean (the control)', async () => {
    const { db } = s.h.t.deps;
    const found = await rowsNaming(db, `${A}-d1`);
    expect(Object.keys(found).sort()).toEqual(
      expect.arrayContaining(['action_runs', 'entity_snapshots', 'events', 'jobs', 'rule_matches']),
    );
    // The broken host's last answer, and the digest quoting both deals' last errors.
    expect(Object.keys(await rowsNaming(db, A))).toContain('destinations');
    const digest = (await db('jobs').where('type', 'alert').pluck('payload')) as string[];
    expect(digest.some((p) => p.includes(`${A}-d1`) && p.includes(`${A}-d2`))).toBe(true);
    expect(smtp.messages.length).toBeGreaterThan(0);
  });

  it('erase --entity removes every text naming the record, and only that record’s', async () => {
    const { db } = s.h.t.deps;
    const keptOwn = await rowsNaming(db, `${A}-d2`);
    const keptOther = await rowsNaming(db, B);
    const [d1] = deals.get(A)!;
    const r = await runCliIn(s.h.t, [
      'erase',
      '--portal',
      s.portal.memberId,
      '--entity',
      `deal:${d1}`,
    ]);
    expect(r.err).toMatch(/^values of deal:\S+ quoted in other records' events .*\n$/);
    expect(r.code).toBe(0);
    expect(await rowsNaming(db, `${A}-d1`)).toEqual({});
    expect(await rowsNaming(db, B)).toEqual(keptOther);
    // The other deal's own rows stay (texts that named both deals go with the erased one).
    const own = await rowsNaming(db, `${A}-d2`);
    for (const table of ['action_runs', 'entity_snapshots', 'events', 'rule_matches']) {
      expect({ table, n: own[table] }).toEqual({ table, n: keptOwn[table] });
    }
    // The digest keeps its line about the other deal.
    const digest = (await db('jobs').where('type', 'alert').pluck('payload')) as string[];
    expect(digest.some((p) => p.includes(`${A}-d2`))).toBe(true);
  });

  it('erase --portal removes every text naming the portal’s records, and keeps the other portal’s', async () => {
    const { db } = s.h.t.deps;
    const keptOther = await rowsNaming(db, B);
    if (isSqlite(db)) {
      // Written through to the main file, as a busy server's checkpoints do (the control of
      // the test below).
      await db.raw('pragma wal_checkpoint(TRUNCATE)');
      expect(fs.readFileSync(s.h.t.dbFile).includes(A)).toBe(true);
    }
    const r = await runCliIn(s.h.t, ['erase', '--portal', s.portal.memberId]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(await rowsNaming(db, A)).toEqual({});
    expect(await rowsNaming(db, B)).toEqual(keptOther);
  });

  it('on SQLite the erased texts are not left in the database file or its WAL', async () => {
    const { db } = s.h.t.deps;
    if (!isSqlite(db)) return;
    // The erase's own checkpoint: the main file no longer holds them (it did, until a
    // checkpoint the server might not make for a long time).
    expect(fs.readFileSync(s.h.t.dbFile).includes(A)).toBe(false);
    // The WAL's earlier frames are overwritten as it is reused, or at once when nothing reads.
    await db.raw('pragma wal_checkpoint(TRUNCATE)');
    for (const file of [s.h.t.dbFile, `${s.h.t.dbFile}-wal`]) {
      if (!fs.existsSync(file)) continue;
      const bytes = fs.readFileSync(file);
      expect({ file, erased: bytes.includes(A) }).toEqual({ file, erased: false });
    }
    // The other portal's data is still in the file.
    expect(fs.readFileSync(s.h.t.dbFile).includes(B)).toBe(true);
  });

  it('uninstall with CLEAN removes every text naming the portal’s records', async () => {
    const { db } = s.h.t.deps;
    expect(Object.keys(await rowsNaming(db, B)).length).toBeGreaterThan(0);
    const deliveries = await other.portal.uninstall({ clean: true });
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    await other.settle();
    expect(await rowsNaming(db, B)).toEqual({});
  });
});
