import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteConnection, type DbTarget } from '../../db/connect.js';
import {
  sqliteIntakeWriter,
  unpackIntakeRows,
  type PackedIntakeRows,
} from '../../db/stores/intake.js';
import type { WriterReply } from './writer.js';

/**
 * Entry of the intake writer thread (see writer.ts): its own SQLite connection, one batch
 * at a time, synchronously and with its statements prepared once — the thread does nothing
 * else, so blocking it costs nobody.
 */
const target = (workerData as { target: DbTarget }).target;
if (target.client !== 'sqlite') throw new Error('the intake writer thread is for SQLite');
const write = sqliteIntakeWriter(openSqliteConnection(target.filename));
const reply = (m: WriterReply) => parentPort?.postMessage(m);
parentPort?.on('message', (m: { id: number; rows: PackedIntakeRows; now: number }) => {
  try {
    const outcomes = write(unpackIntakeRows(m.rows), m.now);
    reply({
      id: m.id,
      eventIds: outcomes.map((o) => o.eventId),
      duplicates: outcomes.map((o) => (o.duplicate ? 1 : 0)),
    });
  } catch (e) {
    reply({ id: m.id, error: (e as Error).message });
  }
});
