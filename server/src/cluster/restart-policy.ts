/**
 * When the primary restarts a crashed worker (docs/operations.md#workers): after a capped
 * exponential backoff, and not at all once workers keep crashing, so a coordinator that cannot
 * run (a store gone for good, a bug that kills every worker) exits non-zero and lets its
 * supervisor (systemd, Kubernetes) see it, instead of looping for ever.
 *
 * Pure: the caller passes the time of each crash, so tests need no clock.
 */
export interface RestartPolicyOptions {
  /** Delay before the first restart in a window, in ms; doubled for each further crash. */
  readonly baseDelayMs: number;
  /** Cap on the delay, in ms. */
  readonly maxDelayMs: number;
  /** Crashes (of any worker) counted together; older ones are forgotten. */
  readonly windowMs: number;
  /** The crash that makes more than this many within the window stops the coordinator. */
  readonly maxCrashesInWindow: number;
}

/** 0.5 s, 1 s, 2 s ... capped at 30 s; the sixth crash within five minutes gives up. */
export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = {
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  windowMs: 5 * 60_000,
  maxCrashesInWindow: 5,
};

export type RestartDecision = { readonly kind: "restart"; readonly delayMs: number; readonly recentCrashes: number } | { readonly kind: "give-up"; readonly recentCrashes: number };

export class RestartPolicy {
  private crashes: number[] = [];

  constructor(private readonly options: RestartPolicyOptions = DEFAULT_RESTART_POLICY) {}

  /** Records a crash at `nowMs` and says what to do about it. */
  crashed(nowMs: number): RestartDecision {
    this.crashes = this.crashes.filter((t) => nowMs - t < this.options.windowMs);
    this.crashes.push(nowMs);
    const recentCrashes = this.crashes.length;
    if (recentCrashes > this.options.maxCrashesInWindow) return { kind: "give-up", recentCrashes };
    const delayMs = Math.min(this.options.maxDelayMs, this.options.baseDelayMs * 2 ** (recentCrashes - 1));
    return { kind: "restart", delayMs, recentCrashes };
  }
}
