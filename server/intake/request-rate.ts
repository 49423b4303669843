/**
 * Genuine deliveries per wall-clock second, counted on the hot path without a timer: the
 * count of the current second, and the full count of the one before it.
 */
export class RequestRate {
  private second = 0;
  private count = 0;
  private last = 0;

  /** Counts one delivery in the current second. */
  hit(): void {
    const sec = Math.floor(Date.now() / 1000);
    if (sec !== this.second) {
      this.last = sec === this.second + 1 ? this.count : 0;
      this.second = sec;
      this.count = 0;
    }
    this.count++;
  }

  /** Requests received in the last full second (or this one, if it already has more). */
  recent(): number {
    const sec = Math.floor(Date.now() / 1000);
    if (sec === this.second) return Math.max(this.last, this.count);
    return sec === this.second + 1 ? this.count : 0;
  }
}
