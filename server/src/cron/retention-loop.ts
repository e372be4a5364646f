import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "../logger.ts";
import type { RetentionBatch, Store } from "../store/store.ts";
import type { Clock } from "../core/clock.ts";

export interface RetentionLoopOptions {
  /** A finished trans older than this (ms since its last update) is deleted; > 0. */
  finishedAgeMs: number;
  /** Between rounds (ms), jittered by ±10 % so coordinators sharing a store spread out. */
  intervalMs: number;
  /** Transactions per deleteFinished call. */
  batchSize: number;
  /** Between two batches of one round (ms), so a backlog never hogs the database. */
  batchPauseMs: number;
}

/** What one round removed (docs/retention.md). */
export interface RetentionRound {
  deleted: number;
  pruned: number;
  batches: number;
}

/**
 * Waits `ms`, or less if `signal` aborts; never keeps the process alive (unref'd timer). Injected
 * so tests run the loop without real waiting.
 */
export type Wait = (ms: number, signal: AbortSignal) => Promise<void>;

export const realWait: Wait = (ms, signal) =>
  delay(ms, undefined, { signal, ref: false }).catch((error: unknown) => {
    if (!signal.aborted) throw error;
  });

/**
 * Retention (docs/retention.md): every `intervalMs` (jittered) deletes finished transactions older
 * than `finishedAgeMs`, batch after batch with a pause between, until the store says none are
 * left. Each batch is one short statement or transaction, so no lock is held for long; a failed
 * batch ends the round (logged), and the next round tries again. Time comes from the injected
 * clock, waits from the injected `wait`.
 */
export class RetentionLoop {
  private stopping = new AbortController();
  private loop: Promise<void> | undefined;
  /** The round running now; rounds never overlap (the timer's and the test-control API's). */
  private current: Promise<RetentionRound> | undefined;

  constructor(
    private readonly store: Pick<Store, "deleteFinished">,
    private readonly clock: Clock,
    private readonly options: RetentionLoopOptions,
    private readonly logger: Logger,
    private readonly onRemoved: (round: RetentionBatch) => void = () => undefined,
    private readonly wait: Wait = realWait,
    private readonly random: () => number = Math.random,
  ) {}

  start(): void {
    if (this.loop) return;
    this.stopping = new AbortController();
    this.loop = this.run();
  }

  /** Stops after the batch running now (a short statement); resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    await this.current?.catch(() => undefined);
    this.loop = undefined;
  }

  /** One round now (or the end of the one running, then another): batches until none are left. */
  async runOnce(): Promise<RetentionRound> {
    while (this.current) await this.current.catch(() => undefined);
    const round = this.round();
    this.current = round;
    try {
      return await round;
    } finally {
      this.current = undefined;
    }
  }

  private async run(): Promise<void> {
    const { signal } = this.stopping;
    while (!signal.aborted) {
      await this.wait(this.options.intervalMs * (0.9 + this.random() * 0.2), signal);
      if (signal.aborted) return;
      try {
        await this.runOnce();
      } catch (error) {
        this.logger.error({ err: error }, "retention round failed; the next round tries again");
      }
    }
  }

  private async round(): Promise<RetentionRound> {
    const { signal } = this.stopping;
    // One cut-off per round: a trans that ages past it during the round waits for the next one.
    const before = this.clock.now() - this.options.finishedAgeMs;
    const total: RetentionRound = { deleted: 0, pruned: 0, batches: 0 };
    for (;;) {
      const batch = await this.store.deleteFinished(before, this.options.batchSize);
      total.batches += 1;
      total.deleted += batch.deleted;
      total.pruned += batch.pruned;
      this.onRemoved(batch);
      if (!batch.more || signal.aborted) break;
      await this.wait(this.options.batchPauseMs, signal);
      if (signal.aborted) break;
    }
    if (total.deleted > 0 || total.pruned > 0) {
      this.logger.info({ deleted: total.deleted, pruned: total.pruned, batches: total.batches, before: new Date(before).toISOString() }, "retention round done");
    }
    return total;
  }
}
