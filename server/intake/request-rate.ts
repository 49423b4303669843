/** Genuine deliveries a second above which the intake is flooded and processing yields to it. */
export const FLOOD_MARK = 1000;

/** Who floods the intake, if anyone. */
export interface Flood {
  /**
   * The largest senders, taken in turn until the others together send no more than the
   * flood mark: only their processing waits.
   */
  readonly portals: ReadonlySet<number>;
}

export const NO_FLOOD: Flood = Object.freeze({ portals: new Set<number>() });

/** How long one answer of `flood()` is reused (it sorts the senders). */
const FLOOD_MEMO_MS = 50;

/**
 * Genuine deliveries per wall-clock second, in all and per portal, counted on the hot path
 * without a timer: the counts of the current second, and the full counts of the one before.
 */
export class RequestRate {
  private second = 0;
  private count = 0;
  private last = 0;
  private byPortal = new Map<number, number>();
  private lastByPortal = new Map<number, number>();

  private memo: { at: number; flood: Flood } | undefined;

  constructor(
    private readonly mark: number = FLOOD_MARK,
    /** Wall-clock time in ms (the real one: this is the rate deliveries arrive at). */
    private readonly wallClock: () => number = Date.now,
  ) {}

  /** Counts one delivery of `portalId` in the current second. */
  hit(portalId: number): void {
    this.roll(Math.floor(this.wallClock() / 1000));
    this.count++;
    this.byPortal.set(portalId, (this.byPortal.get(portalId) ?? 0) + 1);
  }

  /** Requests received in the last full second (or this one, if it already has more). */
  recent(): number {
    this.roll(Math.floor(this.wallClock() / 1000));
    return Math.max(this.last, this.count);
  }

  /**
   * Over the flood mark, the portals sending most are held, the largest first, until the
   * others together send no more than the mark: a stranger's flood, or one spread over
   * several of his portals, holds back his own processing, not a busy genuine portal's nor
   * anyone's below it. Each portal's rate is read like `recent()`.
   */
  flood(): Flood {
    const total = this.recent();
    if (total <= this.mark) return NO_FLOOD;
    const t = this.wallClock();
    if (this.memo && t - this.memo.at >= 0 && t - this.memo.at < FLOOD_MEMO_MS) {
      return this.memo.flood;
    }
    const rates = new Map(this.lastByPortal);
    for (const [p, n] of this.byPortal) rates.set(p, Math.max(n, rates.get(p) ?? 0));
    const largest = [...rates].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const portals = new Set<number>();
    let others = largest.reduce((sum, [, n]) => sum + n, 0);
    for (const [p, n] of largest) {
      if (others <= this.mark) break;
      portals.add(p);
      others -= n;
    }
    const flood: Flood = { portals };
    this.memo = { at: t, flood };
    return flood;
  }

  private roll(sec: number): void {
    if (sec === this.second) return;
    const next = sec === this.second + 1;
    this.last = next ? this.count : 0;
    this.lastByPortal = next ? this.byPortal : new Map();
    this.byPortal = new Map();
    this.second = sec;
    this.count = 0;
  }
}
