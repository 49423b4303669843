import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { openSqliteWriterConnection, type DbTarget } from '../../db/connect.js';
import {
  sqliteIntakeWriter,
  unpackIntakeRows,
  type PackedIntakeRows,
} from '../../db/stores/intake.js';
import type { WriterReply } from './writer.js';

/**
 * Entry of the intake writer thread (see writer.ts): its own SQLite connection, one
 * transaction at a time, synchronously and with its statements prepared once — the thread
 * does nothing else, so blocking it costs nobody. The batches that arrived while a
 * transaction was being committed are written together in the next one, in the order they
 * came, each answered with its own outcomes.
 */
const target = (workerData as { target: DbTarget }).target;
if (target.client !== 'sqlite') throw new Error('the intake writer thread is for SQLite');
const write = sqliteIntakeWriter(openSqliteWriterConnection(target.filename));
const reply = (m: WriterReply) => parentPort?.postMessage(m);
type Batch = { id: number; rows: PackedIntakeRows; now: number };
parentPort?.on('message', (first: Batch) => {
  const batches = [first];
  for (let m; (m = receiveMessageOnPort(parentPort!));) batches.push(m.message as Batch);
  try {
    const outcomes = write(
      batches.flatMap((b) => unpackIntakeRows(b.rows)),
      batches[batches.length - 1]!.now,
    );
    let at = 0;
    for (const b of batches) {
      const mine = outcomes.slice(at, (at += b.rows.length));
      reply({
        id: b.id,
        eventIds: mine.map((o) => o.eventId),
        duplicates: mine.map((o) => (o.duplicate ? 1 : 0)),
      });
    }
  } catch (e) {
    for (const b of batches) reply({ id: b.id, error: (e as Error).message });
  }
});
