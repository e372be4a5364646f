import { randomUUID } from "node:crypto";
import type { Logger } from "../logger.ts";
import type { Executor } from "../service/executor.ts";
import type { Store } from "../store/store.ts";
import type { Clock } from "./clock.ts";

export interface RecoveryLoopOptions {
  /** Idle sleep between claims when nothing was due (ms). */
  idleMs: number;
  /** The claim lease (ms): a claimed trans is not claimed again before this passes. */
  leaseMs: number;
  batchSize: number;
  concurrency: number;
}

/**
 * The cron (PROTOCOL §9.2, D10): claims due, unfinished transactions in batches with a lease and
 * runs a pass on each, at most `concurrency` at a time. After a crash this is what finishes the
 * work: every unfinished trans becomes due at its next_cron_time.
 */
export class RecoveryLoop {
  private readonly owner = randomUUID();
  private stopped = true;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

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

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
  }

  /** One cron round: claims batches until nothing is due; returns how many passes ran. */
  async tickOnce(): Promise<number> {
    let total = 0;
    for (;;) {
      const now = this.clock.now();
      const batch = await this.store.claimDue(now, now + this.options.leaseMs, this.options.batchSize, this.owner);
      if (batch.length === 0) return total;
      total += batch.length;
      await runLimited(batch, this.options.concurrency, async (trans) => {
        try {
          await this.executor.process(trans);
        } catch (error) {
          this.logger.error({ gid: trans.gid, err: error }, "cron pass failed; will retry after the lease");
        }
      });
      if (batch.length < this.options.batchSize) return total;
    }
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let processed = 0;
      try {
        processed = await this.tickOnce();
      } catch (error) {
        this.logger.error({ err: error }, "cron round failed");
      }
      if (processed === 0 && !this.stopped) await this.idle();
    }
  }

  private idle(): Promise<void> {
    // A little jitter so coordinators sharing a store do not poll in lock-step.
    const ms = this.options.idleMs * (0.75 + Math.random() * 0.25);
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }
}

async function runLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++];
      if (item !== undefined) await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
