/** Time is a dependency: production uses `systemClock`, tests a manual clock. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
