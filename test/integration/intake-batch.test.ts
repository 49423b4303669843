import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import {
  MAX_INSERT_ROWS,
  chunkSizes,
  packIntakeRows,
  sqliteIntakeWriter,
  unpackIntakeRows,
  writeIntakeBatch,
  type IntakeOutcome,
  type IntakeRow,
} from '../../db/stores/intake.js';
import { openSqliteWriterConnection } from '../../db/connect.js';
import path from 'node:path';
import { onPg } from '../helpers/pg.js';
import { tempDir } from '../helpers/temp-dir.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { intakeRow, seedPortal, type TestPortal } from '../helpers/event-builder.js';

type Write = (rows: IntakeRow[], now: number) => Promise<IntakeOutcome[]>;

/**
 * The group-commit write itself, with batches larger than one INSERT statement — through
 * knex (PostgreSQL, offline recovery) and on the writer thread's bare SQLite connection.
 */
// The bare connection is the SQLite writer thread's: the PostgreSQL pass runs the knex half.
const ways = onPg() ? (['knex'] as const) : (['knex', 'bare SQLite connection'] as const);
describe.each(ways)('intake batch write (%s)', (via) => {
  let t: TestDeps;
  let portal: TestPortal;
  let write: Write;
  let closeConn = () => {};

  beforeEach(async () => {
    t = await createTestDeps();
    portal = await seedPortal(t.deps);
    if (via === 'knex') {
      write = (rows, now) => writeIntakeBatch(t.deps.db, rows, now);
    } else {
      const conn = openSqliteWriterConnection(t.dbFile);
      const sync = sqliteIntakeWriter(conn);
      write = async (rows, now) => sync(rows, now);
      closeConn = () => conn.close();
    }
  });
  afterEach(async () => {
    closeConn();
    await t.close();
  });

  const delivery = (dealId: number, opts: { key?: string | null } = {}) =>
    intakeRow(portal, dealId, opts);

  it('cuts any batch into power-of-two chunks of at most MAX_INSERT_ROWS', () => {
    expect(chunkSizes(0)).toEqual([]);
    expect(chunkSizes(1)).toEqual([1]);
    expect(chunkSizes(25)).toEqual([16, 8, 1]);
    expect(chunkSizes(150)).toEqual([MAX_INSERT_ROWS, MAX_INSERT_ROWS, 16, 4, 2]);
  });

  it('maps every delivery of a multi-chunk batch to its own event, with jobs in delivery order', async () => {
    const rows = Array.from({ length: 150 }, (_, i) => delivery(1000 + i));
    rows[40] = delivery(1005); // an in-batch repeat of row 5
    rows[120] = delivery(1005); // and another, in a later chunk
    rows[77] = delivery(7777, { key: null }); // a rejected delivery: no dedupe key, no job

    const outcomes = await write(rows, 2_000);

    const events = (await t.deps.db('events').select('id', 'entity_id', 'duplicates')) as Array<{
      id: number;
      entity_id: string;
      duplicates: number;
    }>;
    const byId = new Map(events.map((e) => [Number(e.id), e]));
    expect(events).toHaveLength(148);
    outcomes.forEach((o, i) => {
      expect(byId.get(o.eventId!)?.entity_id).toBe(rows[i]!.event.entity_id);
      expect(o.duplicate).toBe(i === 40 || i === 120);
    });
    expect(byId.get(outcomes[5]!.eventId!)?.duplicates).toBe(2);

    const jobs = (await t.deps.db('jobs').orderBy('id').select('event_id')) as Array<{
      event_id: number;
    }>;
    const expected = rows
      .filter((r, i) => r.job && i !== 40 && i !== 120)
      .map((r) => r.event.entity_id);
    expect(jobs.map((j) => byId.get(Number(j.event_id))?.entity_id)).toEqual(expected);
  });

  it('counts a repeat of an earlier batch on the original and creates no job for it', async () => {
    const [first] = await write([delivery(1), delivery(2)], 2_000);
    const outcomes = await write([delivery(3), delivery(1)], 3_000);

    expect(outcomes[1]).toEqual({ eventId: first!.eventId, duplicate: true });
    const original = await t.deps.db('events').where({ id: first!.eventId }).first();
    expect(Number(original.duplicates)).toBe(1);
    expect(await t.deps.db('jobs').count({ n: '*' }).first()).toEqual({ n: 3 });
  });

  it('carries a batch to the writer thread and back unchanged', () => {
    const proof = delivery(3);
    proof.job = { ...proof.job!, entity_key: 'proof:1', topic: '', detached: true };
    const rows = [delivery(1), delivery(2, { key: null }), proof];
    expect(unpackIntakeRows(structuredClone(packIntakeRows(rows)))).toEqual(rows);
  });
});

(onPg() ? describe.skip : describe)('intake writer connection', () => {
  it('keeps statement journals in memory, not in temporary files', () => {
    const dir = tempDir('b24hooks-writer-conn-');
    const conn = openSqliteWriterConnection(path.join(dir.dir, 'w.sqlite'));
    try {
      // 2 = MEMORY: a batch's multi-row INSERT no longer spills ~45 pages to a temp file.
      expect(conn.pragma('temp_store', { simple: true })).toBe(2);
      expect(conn.pragma('synchronous', { simple: true })).toBe(2); // FULL, as every connection
    } finally {
      conn.close();
      dir.cleanup();
    }
  });
});
