import { CoordinatorError } from "../core/errors.ts";

/**
 * What the recovery loop (cron/recovery-loop.ts) asks before it claims: the pass slots the whole
 * process has free, so its claims respect the same cap as requests. Defined here, below the cron,
 * so the import goes one way (cron -> service).
 */
export interface ClaimGate {
  /** Pass slots free now. */
  room(): number;
  /** Holds `n` slots while a claim is in the store; the returned function releases them, given how many rows the claim took. */
  hold(n: number): (claimed: number) => void;
}

/** The bounds one coordinator keeps on work in flight (config `overload`, see docs/overload.md). */
export interface AdmissionLimits {
  /** Passes running at once in this process, started by requests and by the cron together. */
  maxPassesInFlight: number;
  /** Transactions this process left due for the cron and that no claim has taken yet. */
  maxBacklog: number;
}

/** The `Retry-After` a refused client gets: about one cron round, when slots and backlog free up. */
export const OVERLOADED_RETRY_AFTER_SECONDS = 1;

/**
 * Decides whether a request may start a pass now, must leave its transaction to the recovery loop,
 * or must be refused before anything is written (docs/overload.md).
 *
 * Why two caps: a pass holds memory (its branches, a branch call, a socket) for as long as the
 * slowest participant takes, so passes are capped; work past that cap is durable in the store and
 * costs no memory, but a backlog without bound only turns into latency without bound, so past a
 * second cap the client is told to come back later (503 OVERLOADED, Retry-After).
 *
 * The pass cap is checked in the same tick as a request's pass starts, and a cron claim holds its
 * slots while it is in the store ({@link hold}), so it is exceeded only by a claim's passes racing requests
 * between the claim's answer and their start. The backlog cap is soft by the requests that are
 * between their check and their write at the same moment (bounded by the open connections).
 */
export class PassAdmission implements ClaimGate {
  private backlogCount = 0;
  /** Slots held for a cron claim while it is being made (its passes start as soon as it returns). */
  private claiming = 0;

  /** @param running passes running now in this process (the executor's count) */
  constructor(private readonly limits: AdmissionLimits, private readonly running: () => number) {}

  /** Free pass slots right now. */
  room(): number {
    return Math.max(0, this.limits.maxPassesInFlight - this.running() - this.claiming);
  }

  /** Transactions left to the cron and not yet claimed (an estimate, see {@link hold}). */
  get backlog(): number {
    return this.backlogCount;
  }

  /**
   * Called by every request that creates or advances work, before it writes anything: throws
   * OVERLOADED when no pass slot is free and the backlog is full.
   */
  refuseIfOverloaded(): void {
    if (this.room() > 0 || this.backlogCount < this.limits.maxBacklog) return;
    throw new CoordinatorError(
      "OVERLOADED",
      `the coordinator is at its limits (${this.limits.maxPassesInFlight} passes in flight, ${this.backlogCount} transactions waiting for the recovery loop); nothing was written, retry after ${OVERLOADED_RETRY_AFTER_SECONDS} s`,
    );
  }

  /** Whether a request may start its pass; the caller must start it in the same tick (no await between). */
  tryStart(): boolean {
    return this.room() > 0;
  }

  /** Counts a transaction stored due now and left to the recovery loop. */
  deferred(): void {
    this.backlogCount++;
  }

  /**
   * Holds `n` pass slots for a recovery-loop claim while it is in the store, so requests do not
   * take them meanwhile (the claimed passes start as soon as it returns). The returned function
   * releases them and takes the claim's result: a claim that returned fewer rows than it asked for
   * proves nothing more is due, which empties the backlog estimate; otherwise the claimed rows are
   * taken off it.
   */
  hold(n: number): (claimed: number) => void {
    this.claiming += n;
    let released = false;
    return (claimed) => {
      if (released) return;
      released = true;
      this.claiming -= n;
      this.backlogCount = claimed < n ? 0 : Math.max(0, this.backlogCount - claimed);
    };
  }
}
