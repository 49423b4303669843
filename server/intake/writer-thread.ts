import { parentPort, workerData } from 'node:worker_threads';
import { openDb, type DbTarget } from '../../db/connect.js';
import {
  unpackIntakeRows,
  writeIntakeBatch,
  type PackedIntakeRows,
} from '../../db/stores/intake.js';
import type { WriterReply } from './writer.js';

/**
 * Entry of the intake writer thread (see writer.ts): one connection, one batch at a time.
 * The connection runs the same few statements over and over, so it keeps them prepared.
 */
const db = openDb((workerData as { target: DbTarget }).target, { statementCache: 32 });
let chain: Promise<void> = Promise.resolve();
const reply = (m: WriterReply) => parentPort?.postMessage(m);
parentPort?.on('message', (m: { id: number; rows: PackedIntakeRows; now: number }) => {
  chain = chain.then(async () => {
    try {
      const outcomes = await writeIntakeBatch(db, unpackIntakeRows(m.rows), m.now);
      reply({
        id: m.id,
        eventIds: outcomes.map((o) => o.eventId),
        duplicates: outcomes.map((o) => (o.duplicate ? 1 : 0)),
      });
    } catch (e) {
      reply({ id: m.id, error: (e as Error).message });
    }
  });
});
