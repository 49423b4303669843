/** Genuine deliveries a second above which the intake is flooded and processing yields to it. */
export const FLOOD_MARK = 1000;
/**
 * A portal sending more than this many genuine deliveries a second during a flood is one of
 * its senders: only its own processing is held back, while the other portals' goes on
 * (unless they too, together, send more than FLOOD_MARK).
 */
export const PORTAL_FLOOD_MARK = 100;

/** Who floods the intake, if anyone. */
export interface Flood {
  /** The load is spread over portals that each stay under the portal mark: everyone yields. */
  readonly all: boolean;
  /** Portals over the portal mark while the total is over the flood mark. */
  readonly portals: ReadonlySet<number>;
}

export const NO_FLOOD: Flood = Object.freeze({ all: false, portals: new Set<number>() });

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

  constructor(
    private readonly marks: { flood: number; portal: number } = {
      flood: FLOOD_MARK,
      portal: PORTAL_FLOOD_MARK,
    },
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
   * Over the flood mark, the portals over the portal mark are its senders; if the others
   * still send more than the flood mark together, the load is spread and everyone yields.
   * Each portal's rate is read like `recent()`.
   */
  flood(): Flood {
    const total = this.recent();
    if (total <= this.marks.flood) return NO_FLOOD;
    const portals = new Set<number>();
    let theirs = 0;
    const look = (counts: Map<number, number>) => {
      for (const [p, n] of counts) {
        if (n <= this.marks.portal || portals.has(p)) continue;
        const most = Math.max(this.byPortal.get(p) ?? 0, this.lastByPortal.get(p) ?? 0);
        portals.add(p);
        theirs += most;
      }
    };
    look(this.byPortal);
    look(this.lastByPortal);
    return { all: total - theirs > this.marks.flood, portals };
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
