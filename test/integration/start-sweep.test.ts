import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from '@jest/globals';
import { insertJobs, type NewJob } from '../../db/stores/jobs.js';
import { createWorker, type Worker } from '../../server/queue/worker.js';
import { workerHost } from '../../server/queue/start-sweep.js';
import { createManualClock } from '../helpers/manual-clock.js';
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { waitFor } from '../reliability/lib/deliveries.js';

/** The pid of a process that has exited. */
function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  return new Promise((resolve) => child.once('exit', () => resolve(child.pid!)));
}

/**
 * Start-up: a server starting on a database where another live process (here this
 * test's worker, as a `replay --wait` would be) holds a job must leave that job alone, and
 * return only the jobs of processes that are gone.
 */
describe('the start-up sweep', () => {
  let t: TestDeps | undefined;
  let worker: Worker | undefined;
  let server: SpawnedServer | undefined;
  let release: () => void = () => undefined;
  afterEach(async () => {
    await server?.stop();
    release();
    await worker?.stop(2000);
    await t?.close();
  });

  it('releases the jobs of a dead process and keeps those of a live one', async () => {
    t = await createTestDeps({}, { clock: createManualClock(Date.now()) });
    const now = t.clock.now().getTime();
    const job = (n: number): NewJob => ({
      type: 'lifecycle',
      event_id: null,
      portal_id: null,
      entity_key: `sweep:${n}`,
      payload: null,
      max_attempts: 3,
      run_at: now,
    });
    await insertJobs(t.deps.db, [job(1), job(2)], now);
    const gate = new Promise<void>((r) => (release = r));
    worker = createWorker(t.deps, { concurrency: 1, handlers: { lifecycle: () => gate } });
    const running = worker.runOnce();
    const jobs = () => t!.deps.db('jobs').orderBy('id').select('id', 'status', 'locked_by');
    expect(await waitFor(async () => (await jobs())[0]?.status === 'running', 2000, 10)).toBe(true);
    const gone = `${workerHost()}:${await deadPid()}:gone`;
    await t.deps
      .db('jobs')
      .where({ entity_key: 'sweep:2' })
      .update({ status: 'running', locked_by: gone, locked_at: now });

    server = await spawnServer({
      DATA_DIR: t.dir,
      SESSION_SECRET: t.deps.config.sessionSecret,
      TOKEN_ENCRYPTION_KEY: t.deps.config.tokenEncryptionKey.toString('hex'),
      B24_OFFLINE_EVENTS: 'off',
      ...t.dbEnv,
    });

    const [live, dead] = await jobs();
    expect(live).toMatchObject({ status: 'running', locked_by: worker.id });
    // Control: the sweep ran and returned the dead process's job (which the new server may
    // already have claimed and run).
    expect(dead?.locked_by).not.toBe(gone);
    const said = 'returned the jobs of stopped processes to the queue';
    expect(await waitFor(() => server!.stdout().includes(said), 5000, 20)).toBe(true);
    release();
    expect((await running).map((o) => o.outcome)).toHaveLength(1);
  });
});
