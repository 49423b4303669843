import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Knex } from 'knex';
import PQueue from 'p-queue';

/**
 * Turns between the two SQLite connections of one server process: the main thread's (knex:
 * the worker, the pages, the alert checks) and the intake writer thread's. better-sqlite3 waits for a
 * lock synchronously, by SQLite's busy handler sleeping 1, 2, 5, 10… ms on the calling
 * thread, so a worker transaction that met the writer thread mid-commit froze every request
 * of the main thread for that long, many times a second under a flood. With the gate the
 * main thread asks for its turn asynchronously instead: its statement starts only when the
 * writer thread is between transactions, and the writer's next batch waits, without
 * blocking anybody, until the main thread hands the connection back. Turns are first come,
 * first served (a p-queue of concurrency 1), so neither side starves.
 */
export interface ConnectionGate {
  /** Resolves when it is the caller's turn, with the function that ends the turn. */
  acquire(): Promise<() => void>;
  /** How many callers wait for a turn now. */
  waiting(): number;
}

export function createConnectionGate(): ConnectionGate {
  const turns = new PQueue({ concurrency: 1 });
  return {
    acquire() {
      return new Promise<() => void>((granted) => {
        void turns.add(() => new Promise<void>((done) => granted(once(done))));
      });
    },
    waiting: () => turns.size,
  };
}

const once = (f: () => void) => {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    f();
  };
};

type PoolClient = {
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<void>;
};

/**
 * Makes every connection this knex takes from its pool (a query, or a whole transaction)
 * wait for its turn at `gate`, and hand the turn back when the connection is released.
 * For SQLite's single-connection pool: knex already runs one query or transaction at a time
 * there, so the gate only adds the writer thread's transactions to the same line.
 *
 * Each one first waits for a turn of the event loop. better-sqlite3 answers synchronously,
 * so without it a chain of queries that needs no network (a worker round of events no rule
 * matches: three or four transactions each, every commit an fsync) ran as one unbroken string
 * of promise callbacks: requests waited up to 2.9 s, and the intake fell from 11,000 to
 * 3,500 deliveries a second (test/bench/README.md). Now at most one query or transaction runs
 * between two looks at the sockets.
 */
export function gateConnections(db: Knex, gate = createConnectionGate()): ConnectionGate {
  const client = db.client as unknown as PoolClient;
  const acquire = client.acquireConnection.bind(client);
  const release = client.releaseConnection.bind(client);
  const turns = new WeakMap<object, () => void>();
  client.acquireConnection = async () => {
    await nextTurn();
    const done = await gate.acquire();
    try {
      const connection = await acquire();
      turns.set(connection as object, done);
      return connection;
    } catch (e) {
      done();
      throw e;
    }
  };
  client.releaseConnection = async (connection: unknown) => {
    const done = turns.get(connection as object);
    turns.delete(connection as object);
    try {
      await release(connection);
    } finally {
      done?.();
    }
  };
  return gate;
}
