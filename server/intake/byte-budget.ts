/**
 * What one portal's genuine deliveries may store, per instance: a bucket of bytes per portal
 * that holds an hour's allowance and fills again at that rate. Anyone who installs the app
 * can learn his own portal's application token (the frame's AUTH_ID binds events anywhere),
 * and every delivery he then posts is genuine: at `BODY_LIMIT` each and under the flood mark,
 * one portal grew the database by about 24 MB a second, a disk shared by every portal. A real
 * portal's deliveries are about a kilobyte (an ID and the auth block), so the default hour,
 * 256 MB, is some 125,000 of them at once (each counted with its rows, ROW_BYTES), and
 * their pace after that.
 *
 * Counted on the hot path without a timer or a query: one map read and write per delivery.
 */

/**
 * What a stored delivery costs besides its body: the event row's other columns, its job row
 * and their index entries. A red-team's small deliveries (about 120 bytes of body each) grew
 * a SQLite file by about 980 bytes apiece, eight times what their bodies counted.
 */
export const ROW_BYTES = 1024;

/**
 * The app's own events (ONAPPINSTALL, ONAPPUPDATE, ONAPPUNINSTALL) draw on an allowance of
 * their own, this much an hour at most: an uninstall with "delete app data" refused because
 * the portal's deal updates had spent the hour is never sent again, and the portal would
 * keep its tokens and data. A real portal sends a few, of about a kilobyte.
 */
export const LIFECYCLE_BYTES_PER_HOUR = 4 * 1024 * 1024;

/** Bytes a delivery costs the budget: its body as stored (UTF-8) and its rows. */
export const storedCost = (body: string | null | undefined): number =>
  (body ? Buffer.byteLength(body, 'utf8') : 0) + ROW_BYTES;

const HOUR_MS = 3_600_000;
/** Buckets are forgotten once full again; the map is swept for them this often (deliveries). */
const SWEEP_EVERY = 10_000;

interface Bucket {
  bytes: number;
  at: number;
  /** Deliveries refused since the last line about them, and when that line was written. */
  refused: number;
  loggedAt: number;
}

/** A portal's refusals are logged at most once in this long, with their count. */
const LOG_EVERY_MS = 60_000;

export class ByteBudget {
  private readonly buckets = new Map<number, Bucket>();
  private untilSweep = SWEEP_EVERY;

  constructor(
    /** Bytes a portal may store in an hour (and at once); 0 turns the budget off. */
    private readonly perHour: number,
    /** Wall-clock time in ms: this is the pace deliveries arrive at. */
    private readonly wallClock: () => number = Date.now,
  ) {}

  /**
   * Takes `bytes` from the portal's allowance. Returns 0 when they fit, else the seconds
   * until they would (nothing taken): a refused delivery is not stored, so it costs nothing.
   */
  take(portalId: number, bytes: number): number {
    if (this.perHour <= 0) return 0;
    const now = this.wallClock();
    if (--this.untilSweep <= 0) this.sweep(now);
    let b = this.buckets.get(portalId);
    const have = b ? this.level(b, now) : this.perHour;
    if (!b) {
      b = { bytes: have, at: now, refused: 0, loggedAt: -Infinity };
      this.buckets.set(portalId, b);
    }
    b.bytes = have;
    b.at = now;
    // A delivery larger than the whole hour (BODY_LIMIT is checked to fit in it, but a stored
    // body may be longer than the form it came as) fits a full bucket, and empties it.
    if (bytes <= have || have >= this.perHour) {
      b.bytes = Math.max(0, have - bytes);
      return 0;
    }
    b.refused++;
    const missing = Math.min(bytes, this.perHour) - have;
    return Math.max(1, Math.ceil((missing / this.perHour) * (HOUR_MS / 1000)));
  }

  /**
   * The portal's refusals since the last time this said so, once a minute at most (a line
   * per refusal would fill the log as fast as the flood came); undefined in between.
   */
  toLog(portalId: number): number | undefined {
    const b = this.buckets.get(portalId);
    const now = this.wallClock();
    if (!b || b.refused === 0 || now - b.loggedAt < LOG_EVERY_MS) return undefined;
    const n = b.refused;
    b.refused = 0;
    b.loggedAt = now;
    return n;
  }

  /** Portals whose allowance is not full (tests, status). */
  get tracked(): number {
    return this.buckets.size;
  }

  private level(b: Bucket, now: number): number {
    const refill = (Math.max(0, now - b.at) / HOUR_MS) * this.perHour;
    return Math.min(this.perHour, b.bytes + refill);
  }

  private sweep(now: number): void {
    this.untilSweep = SWEEP_EVERY;
    for (const [p, b] of this.buckets) {
      const quiet = b.refused === 0 || now - b.loggedAt >= LOG_EVERY_MS;
      if (quiet && this.level(b, now) >= this.perHour) this.buckets.delete(p);
    }
  }
}
