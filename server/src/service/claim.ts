import { randomUUID } from "node:crypto";
import type { Clock } from "../core/clock.ts";
import type { Store } from "../store/store.ts";

/** The abort reason of calls still in flight when their pass ends (one instance: no stack captured per pass). */
const PASS_ENDED = new Error("the pass ended");

/** How leases are sized (docs/fencing.md). */
export interface LeaseConfig {
  /** The lease a renewal grants when no call needs longer (ms); the cron's claim lease. */
  leaseMs: number;
  /**
   * Slack (ms) a lease keeps beyond the deadline of every call in flight, for clock skew between
   * coordinators and the time a store write takes.
   */
  marginMs: number;
}

/**
 * The claim one pass holds on its transaction: the fencing token written into `owner` by whoever
 * claimed it, and the lease (`next_cron_time`) as far as this process knows it.
 *
 * Invariant (docs/fencing.md): while the pass runs, `leaseUntil` equals the stored lease, and it
 * is never less than the deadline of any call in flight plus the margin. The lease only grows
 * while the pass runs: every store operation that moves it is serialised here and asks for at
 * least what it already has, so a renewal and a write racing each other cannot shrink it.
 */
export class Claim {
  private lost = false;
  private ended = false;
  /** Store operations that carry the fence run one after another, in call order. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly abortController = new AbortController();

  constructor(
    readonly gid: string,
    readonly token: string,
    private lease: number,
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly config: LeaseConfig,
  ) {}

  /** The stored lease as of the last operation that moved it. */
  get leaseUntil(): number {
    return this.lease;
  }

  get isLost(): boolean {
    return this.lost;
  }

  /** Aborted when the claim is lost or the pass ends: calls still in flight are cut off. */
  get signal(): AbortSignal {
    return this.abortController.signal;
  }

  /** True if the lease already covers a call of `timeoutMs` starting now (no store trip). */
  covers(timeoutMs: number): boolean {
    return this.lease >= this.clock.now() + timeoutMs + this.config.marginMs;
  }

  /**
   * Renews the lease so that it covers a call of `timeoutMs` starting now, with half a lease to
   * spare so the next calls need no renewal of their own. False: the claim is lost.
   */
  extendFor(timeoutMs: number): Promise<boolean> {
    return this.renew(() => this.clock.now() + timeoutMs + this.config.marginMs + this.config.leaseMs / 2);
  }

  /**
   * The background renewal (every leaseMs/3): renews to now + leaseMs once less than two thirds
   * of a lease is left. Resolves false if the claim is lost.
   */
  refresh(): Promise<boolean> {
    if (this.lost || this.ended) return Promise.resolve(!this.lost);
    if (this.lease - this.clock.now() >= (this.config.leaseMs * 2) / 3) return Promise.resolve(true);
    return this.renew(() => this.clock.now() + this.config.leaseMs);
  }

  /**
   * The lease a write made while the pass goes on must keep: never less than the current one, so
   * the calls in flight stay covered.
   */
  keep(requested: number): number {
    return Math.max(requested, this.lease);
  }

  /**
   * Runs one fenced store write in order with the renewals. `leaseAfter` is the next_cron_time
   * the write sets, if any. A refused write marks the claim lost.
   */
  write(run: () => Promise<boolean>, leaseAfter: number | undefined): Promise<boolean> {
    return this.serial(async () => {
      if (this.lost) return false;
      const won = await run();
      if (!won) this.markLost();
      else if (leaseAfter !== undefined) this.lease = leaseAfter;
      return won;
    });
  }

  /** The pass is over: no more renewals, and any call still in flight is cut off. */
  end(): void {
    this.ended = true;
    this.abortController.abort(PASS_ENDED);
  }

  private renew(target: () => number): Promise<boolean> {
    return this.serial(async () => {
      if (this.lost) return false;
      if (this.ended) return true;
      const until = Math.max(target(), this.lease);
      const held = await this.store.renewLease(this.gid, this.token, until);
      if (held) this.lease = until;
      else this.markLost();
      return held;
    });
  }

  private markLost(): void {
    this.lost = true;
    this.abortController.abort(new Error(`lost the claim on ${this.gid}`));
  }

  private serial<T>(run: () => Promise<T>): Promise<T> {
    const next = this.chain.then(run);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** The end of a token whose pass defers branch results (docs/deviations.md D14). */
const DEFERS_RESULTS = ":d";

/**
 * Whether the pass holding `token` writes branch results only with its next write that happens
 * anyway (`deferBranchResults`), so that if it dies or loses its claim, branches it called may
 * look unstarted in the store. The token says so itself, so a coordinator taking over knows it
 * whatever its own setting (two coordinators on one store may differ during a config change).
 */
export function tokenDefersResults(token: string): boolean {
  return token.endsWith(DEFERS_RESULTS);
}

/** `token` marked as deferring (unchanged if it already is). */
function markDeferring(token: string): string {
  return tokenDefersResults(token) ? token : `${token}${DEFERS_RESULTS}`;
}

/**
 * What `owner` becomes when the claim `token` is given up on an unfinished trans: "" (nobody holds
 * it), or, while branch results may be missing (docs/deviations.md D14), a token marked as
 * deferring, so the next claim learns that doubt from its `previousOwner`.
 */
export function releasedOwner(token: string, resultsMayBeMissing: boolean): string {
  return resultsMayBeMissing ? markDeferring(token) : "";
}

/**
 * Fencing tokens for one coordinator process: `<random process id>:<counter>`, plus `:d` when its
 * passes defer branch results, so every claim (by the cron or by a request) writes a token no
 * earlier claim of the same trans had, from this coordinator or another. At most ~52 characters
 * (the `owner` column holds 128).
 */
export class ClaimTokens {
  private readonly id = randomUUID();
  private counter = 0;

  constructor(private readonly options: { deferBranchResults?: boolean } = {}) {}

  next(): string {
    this.counter += 1;
    return `${this.id}:${this.counter.toString(36)}${this.options.deferBranchResults ? DEFERS_RESULTS : ""}`;
  }
}
