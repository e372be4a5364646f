import type { Outcome } from "../core/types.ts";

/** The bounds of a branch client towards one origin (config `overload`, docs/overload.md). */
export interface BranchClientLimits {
  /** Connections opened to one origin (HTTP); calls beyond them wait in the client's queue. */
  connections: number;
  /** Calls to one origin that may wait for a connection or stream. */
  queue: number;
}

/**
 * Counts the calls in flight (running or queued) to each origin and refuses one past
 * `connections + queue` at once, as a retryable `error` outcome: the transaction backs off and
 * its pass ends, instead of the client's queue (undici's pool queue, an HTTP/2 connection's
 * waiting streams) growing with every slow participant. Origins without calls are forgotten.
 */
export class OriginLimiter {
  private readonly counts = new Map<string, number>();
  private readonly max: number;

  constructor(limits: BranchClientLimits) {
    this.max = limits.connections + limits.queue;
  }

  /** Runs `call` if `origin` has room; never throws for the limit. `origin` must hold no credentials. */
  async run(origin: string, call: () => Promise<Outcome>): Promise<Outcome> {
    const refused = this.enter(origin);
    if (refused !== undefined) return { kind: "error", message: refused };
    try {
      return await call();
    } finally {
      this.leave(origin);
    }
  }

  /**
   * Takes a slot for one call to `origin`, or answers why not (the outcome message of a refused
   * call). Every slot taken must be given back with {@link leave} once the client is done with
   * the call, which may be after its caller stopped waiting (a call cut off while queued).
   */
  enter(origin: string): string | undefined {
    const n = this.counts.get(origin) ?? 0;
    if (n >= this.max) {
      return `call not made: ${n} calls to ${origin} are already in flight or queued (overload.branchConnections + overload.branchQueue = ${this.max})`;
    }
    this.counts.set(origin, n + 1);
    return undefined;
  }

  /** Gives back a slot {@link enter} took. */
  leave(origin: string): void {
    const left = (this.counts.get(origin) ?? 1) - 1;
    if (left > 0) this.counts.set(origin, left);
    else this.counts.delete(origin);
  }

  /** Calls in flight to `origin` (for tests). */
  inFlight(origin: string): number {
    return this.counts.get(origin) ?? 0;
  }
}

/** Default limits when a client is built without config (tests): the config's defaults. */
export const DEFAULT_BRANCH_CLIENT_LIMITS: BranchClientLimits = { connections: 512, queue: 1024 };
