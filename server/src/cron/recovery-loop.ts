import type { Logger } from "../logger.ts";
import type { Executor } from "../service/executor.ts";
import type { ClaimGate } from "../service/pass-admission.ts";
import type { ClaimedTrans, Store } from "../store/store.ts";
import type { Clock } from "../core/clock.ts";

export interface RecoveryLoopOptions {
  /** Idle sleep between claims when nothing was due (ms). */
  idleMs: number;
  /** The claim lease (ms): a claimed trans is not claimed again before this passes (docs/fencing.md). */
  leaseMs: number;
  /** Transactions claimed per store round trip, at most. */
  batchSize: number;
  /** Passes the loop keeps running at once, at most. */
  concurrency: number;
  /** A fresh fencing token per claim (docs/fencing.md). */
  newToken: () => string;
  /** The process-wide pass cap the loop's claims must respect too (docs/overload.md); none = only `concurrency`. */
  gate?: ClaimGate;
}

/** How often the loop looks again when its pool is empty but requests hold every pass slot. */
const ROOM_POLL_MS = 20;

/**
 * The cron (docs/protocol.md#recovery-loop, docs/deviations.md D10): claims due, unfinished transactions with a lease and runs a pass
 * on each, as a rolling pool of at most `concurrency` passes: when enough slots are free it
 * claims `min(free slots, batchSize)` more, so one slow pass never holds up the others (it only
 * takes its own slot). After a crash this is what finishes the work: every unfinished trans
 * becomes due at its next_cron_time.
 */
export class RecoveryLoop {
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  /** Passes this loop started and that have not ended. */
  private readonly active = new Set<Promise<void>>();
  /** The loop sleeps until a slot frees up (not for the idle time). */
  private waitingForSlots = false;

  constructor(
    private readonly store: Store,
    private readonly executor: Executor,
    private readonly clock: Clock,
    private readonly options: RecoveryLoopOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /** Stops claiming and waits for the passes it started. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp();
    await this.loop;
    await Promise.allSettled([...this.active]);
  }

  /**
   * One cron round (the test-control API): claims until nothing is due, through the same pool,
   * and resolves once every pass it started has ended. Returns how many passes it ran.
   */
  async tickOnce(): Promise<number> {
    const mine: Promise<void>[] = [];
    for (;;) {
      const want = this.claimSize();
      if (want === 0) {
        // No slot: wait for one of this loop's passes; with none running, requests hold every
        // slot of the process and this round can run nothing more.
        if (this.active.size === 0) break;
        await Promise.race(this.active);
        continue;
      }
      const batch = await this.claim(want);
      for (const trans of batch) mine.push(this.startPass(trans));
      if (batch.length < want) break;
    }
    await Promise.all(mine);
    return mine.length;
  }

  /**
   * How many to claim now: the free slots, at most a batch. The one place that decides how much
   * work the loop may take on.
   */
  private claimSize(): number {
    const room = this.options.gate?.room() ?? Number.POSITIVE_INFINITY;
    return Math.max(0, Math.min(this.options.concurrency - this.active.size, this.options.batchSize, room));
  }

  /**
   * Free slots worth a claim: a quarter of the pool (or of a batch, if smaller), so a busy pool
   * refills in a few claims rather than one claim per finished pass.
   */
  private worthClaiming(): boolean {
    const refill = Math.max(1, Math.floor(Math.min(this.options.concurrency, this.options.batchSize) / 4));
    return this.claimSize() >= refill || this.active.size === 0;
  }

  private async claim(limit: number): Promise<ClaimedTrans[]> {
    const now = this.clock.now();
    const release = this.options.gate?.hold(limit);
    let claimed = 0;
    try {
      const batch = await this.store.claimDue(now, now + this.options.leaseMs, limit, this.options.newToken());
      claimed = batch.length;
      return batch;
    } finally {
      release?.(claimed);
    }
  }

  private startPass(trans: ClaimedTrans): Promise<void> {
    const pass = this.executor.process(trans, undefined, trans.previousOwner).then(
      () => undefined,
      (error: unknown) => {
        this.logger.error({ gid: trans.gid, err: error }, "cron pass failed; will retry after the lease");
      },
    );
    this.active.add(pass);
    void pass.finally(() => {
      this.active.delete(pass);
      // A pool that was full claims again once enough slots are free.
      if (this.waitingForSlots && this.worthClaiming()) this.wakeUp();
    });
    return pass;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (!this.worthClaiming()) {
        await this.sleep(undefined);
        continue;
      }
      const want = this.claimSize();
      if (want === 0) {
        // Requests hold every pass slot: look again shortly (their passes do not wake the loop).
        await this.sleep(this.active.size > 0 ? undefined : ROOM_POLL_MS);
        continue;
      }
      let batch: ClaimedTrans[] = [];
      try {
        batch = await this.claim(want);
      } catch (error) {
        this.logger.error({ err: error }, "cron claim failed");
      }
      for (const trans of batch) this.startPass(trans);
      // A short batch: nothing more is due now; sleep (a finished pass does not wake the loop).
      if (batch.length < want && !this.stopped) await this.sleep(this.options.idleMs);
    }
  }

  /** Sleeps until woken (a slot frees up, stop()) or, with `idleMs`, until it passes. */
  private sleep(idleMs: number | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      this.waitingForSlots = idleMs === undefined;
      this.wake = () => resolve();
      if (idleMs !== undefined) {
        // A little jitter so coordinators sharing a store do not poll in lock-step.
        this.timer = setTimeout(resolve, idleMs * (0.75 + Math.random() * 0.25));
      }
    }).finally(() => {
      this.waitingForSlots = false;
      this.wake = undefined;
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
    });
  }

  private wakeUp(): void {
    this.wake?.();
  }
}

