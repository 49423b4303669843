import { parentPort, workerData } from 'node:worker_threads';
import { openDb, type DbTarget } from '../../db/connect.js';
import { writeIntakeBatch, type IntakeRow } from '../../db/stores/intake.js';

/** Entry of the intake writer thread (see writer.ts): one connection, one batch at a time. */
const db = openDb((workerData as { target: DbTarget }).target);
let chain: Promise<void> = Promise.resolve();
parentPort?.on('message', (m: { id: number; rows: IntakeRow[]; now: number }) => {
  chain = chain.then(async () => {
    try {
      const outcomes = await writeIntakeBatch(db, m.rows, m.now);
      parentPort?.postMessage({ id: m.id, outcomes });
    } catch (e) {
      parentPort?.postMessage({ id: m.id, error: (e as Error).message });
    }
  });
});
