import session from 'express-session';
import type { Knex } from 'knex';

export interface SessionStoreOptions {
  /** Milliseconds clock (the app's injected clock in production and tests). */
  now: () => number;
  /** Lifetime when the cookie carries no maxAge. @default 2 h */
  defaultTtlMs?: number;
  /** Expired rows are swept at most this often, on a write; no timers. @default 10 min */
  sweepEveryMs?: number;
  /** Whose a session is (the `owner` column, migration 0039); undefined: no one's. */
  ownerOf?: (sess: session.SessionData) => string | undefined;
  /**
   * Live sessions kept per owner: a write of one past it ends that owner's oldest (the ones
   * whose expiry is nearest). @default 50
   */
  maxPerOwner?: number;
}

/** How far the stored expiry may lag behind a touch before it is written (see `touch`). */
const TOUCH_SLACK_MS = 60_000;

/**
 * The express-session store of the pages inside Bitrix24: one row per session in the
 * `sessions` table (migration 0003), JSON-encoded, with an expiry in milliseconds. Works on
 * SQLite and PostgreSQL through knex, so several app instances share sessions.
 * (connect-session-knex creates its table outside migrations, reads the wall clock and
 * keeps a cleanup timer running after the database is closed, so it is not used.)
 */
export class KnexSessionStore extends session.Store {
  private lastSweep = 0;
  private readonly ttl: number;
  private readonly sweepEvery: number;
  private readonly maxPerOwner: number;

  constructor(
    private readonly db: Knex,
    private readonly opts: SessionStoreOptions,
  ) {
    super();
    this.ttl = opts.defaultTtlMs ?? 2 * 3600_000;
    this.sweepEvery = opts.sweepEveryMs ?? 10 * 60_000;
    this.maxPerOwner = opts.maxPerOwner ?? 50;
  }

  /** Expiry on the store's clock (the cookie's own `expires` is wall-clock time). */
  private expiry(sess: session.SessionData): number {
    return this.opts.now() + (sess.cookie?.originalMaxAge ?? sess.cookie?.maxAge ?? this.ttl);
  }

  override get(sid: string, cb: (err: unknown, sess?: session.SessionData | null) => void): void {
    this.db('sessions')
      .where('sid', sid)
      .where('expires_at', '>', this.opts.now())
      .first('sess')
      .then((row: { sess: string } | undefined) =>
        cb(null, row ? (JSON.parse(row.sess) as session.SessionData) : null),
      )
      .catch((e: unknown) => cb(e));
  }

  override set(sid: string, sess: session.SessionData, cb?: (err?: unknown) => void): void {
    const now = this.opts.now();
    const owner = this.opts.ownerOf?.(sess) ?? null;
    const work = async () => {
      await this.db('sessions')
        .insert({ sid, sess: JSON.stringify(sess), expires_at: this.expiry(sess), owner })
        .onConflict('sid')
        .merge(['sess', 'expires_at', 'owner']);
      if (owner !== null) {
        // One indexed statement: the owner's sessions past the newest maxPerOwner end, never
        // the one being saved (two stamped in one millisecond, or by instances whose clocks
        // differ, would otherwise rank it by its random id).
        await this.db('sessions')
          .where('owner', owner)
          .whereNot('sid', sid)
          .whereNotIn(
            'sid',
            this.db('sessions')
              .select('sid')
              .where('owner', owner)
              .whereNot('sid', sid)
              .orderBy([
                { column: 'expires_at', order: 'desc' },
                { column: 'sid', order: 'desc' },
              ])
              .limit(this.maxPerOwner - 1),
          )
          .delete();
      }
      if (now - this.lastSweep >= this.sweepEvery) {
        this.lastSweep = now;
        await this.db('sessions').where('expires_at', '<=', now).delete();
      }
    };
    work().then(
      () => cb?.(),
      (e: unknown) => cb?.(e),
    );
  }

  /**
   * Rolling sessions are touched on every page view. A write there is a commit, an fsync on
   * the main thread's connection on SQLite, so the stored expiry moves only once it lags a
   * minute behind: it may end a session up to a minute before its cookie would have.
   */
  override touch(sid: string, sess: session.SessionData, cb?: (err?: unknown) => void): void {
    const expiry = this.expiry(sess);
    this.db('sessions')
      .where('sid', sid)
      .where('expires_at', '<', expiry - TOUCH_SLACK_MS)
      .update({ expires_at: expiry })
      .then(
        () => cb?.(),
        (e: unknown) => cb?.(e),
      );
  }

  override destroy(sid: string, cb?: (err?: unknown) => void): void {
    this.db('sessions')
      .where('sid', sid)
      .delete()
      .then(
        () => cb?.(),
        (e: unknown) => cb?.(e),
      );
  }
}
