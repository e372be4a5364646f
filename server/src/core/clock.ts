/** The coordinator's source of time. Core logic takes `now` as a parameter; only services hold a Clock. */
export interface Clock {
  now(): number;
}

/**
 * Wall-clock time plus an offset that only the opt-in test-control API moves forward, so tests of
 * retries and timeouts take milliseconds and never sleep.
 */
export class AdjustableClock implements Clock {
  private offset = 0;

  now(): number {
    return Date.now() + this.offset;
  }

  advance(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError("advance takes a finite, non-negative number of ms");
    this.offset += ms;
  }

  get offsetMs(): number {
    return this.offset;
  }
}
