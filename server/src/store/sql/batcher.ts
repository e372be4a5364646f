/**
 * Group commit for the SQL stores' hot writes (docs/architecture.md#group-commit): calls that arrive while
 * earlier statements are in flight are sent together as one multi-row statement. Each statement
 * costs a round trip, a writev and a plan execution on both sides, so under load one statement
 * for N operations is much cheaper than N; at low load nothing waits (a call that finds a free
 * slot goes out at once, alone).
 *
 * Faults: one statement that hangs must not stall every write behind it, so a call that has
 * waited `startAfterMs` gets another statement of its own if a slot is free; the queue is
 * bounded (`maxQueued`, past it a call fails at once), and a call still queued after
 * `maxQueueWaitMs` fails without being sent (docs/store-outages.md).
 */
import { StoreUnavailableError } from "../store-errors.ts";

/** What a {@link Batcher} needs to know about one kind of operation. */
export interface BatcherOptions<Op, R> {
  /**
   * Batch statements running at once, at most. A second one starts only when a full batch
   * (`maxBatch`) is waiting: until then calls queue behind the running one and go out together
   * when it ends. On the project's 2-core bench one statement at a time was about 1.3x faster than
   * four (fewer, fuller statements: less CPU on both sides), while the extra slots keep the
   * throughput growing once one statement at a time cannot keep up.
   */
  maxInFlight: number;
  /** Operations per batch statement at most. */
  maxBatch: number;
  /** Operations with the same key are never in one batch nor in flight at once; they run in call order. */
  key: (op: Op) => string;
  /** Runs several operations (distinct keys) as one statement; results in the order of `ops`. */
  runBatch: (ops: readonly Op[]) => Promise<R[]>;
  /** Runs one operation on its own: a lone call, and each operation of a batch that failed. */
  runOne: (op: Op) => Promise<R>;
  /**
   * True when a failed batch certainly wrote nothing, so its operations can be run again one by
   * one (a bad value in one of them then fails only its own caller). False for an error that
   * leaves the outcome unknown (the connection broke): every caller of the batch gets it.
   */
  retrySingly: (error: unknown) => boolean;
  /**
   * A call queued this long (ms) behind a running statement gets a statement of its own if a
   * slot is free, full batch or not: a hung statement then delays the calls behind it by this
   * much, not by its own timeout. Long enough that a healthy statement finishes first, so the
   * calls still go out together under load. This is the floor: on a busy database, whose
   * statements take longer, the wait grows to SLOW_FACTOR times the recent statement time (at
   * most a quarter of maxQueueWaitMs), so a merely slow statement does not split the batches.
   */
  startAfterMs: number;
  /** Calls queued at most; past it a call fails at once with StoreUnavailableError instead of queueing. */
  maxQueued: number;
  /**
   * A call not sent after waiting this long (ms) fails with StoreUnavailableError and is never
   * sent: its caller has been answered already (the store timeout), and a write the caller was
   * told failed should not run later if it can be avoided.
   */
  maxQueueWaitMs: number;
}

/** Counters for tests and diagnostics: what the batcher really sent. */
export interface BatcherStats {
  /** Multi-operation statements sent (retries by the caller's runBatch not counted). */
  batches: number;
  /** Operations that went out in those statements. */
  batchedOps: number;
  /** Operations sent on their own (lone calls and re-runs after a failed batch). */
  singles: number;
  /** Batches that failed and were re-run one by one. */
  splitBatches: number;
  largestBatch: number;
  /** Statements started early, for a call that waited startAfterMs, without a full batch. */
  startedEarly: number;
  /** Calls refused because the queue was full. */
  refused: number;
  /** Calls failed unsent after maxQueueWaitMs. */
  expired: number;
}

/** A statement running this many times longer than recent ones is taken for hung (see startAfterMs). */
const SLOW_FACTOR = 4;
/** Weight of the newest statement in the running average of statement times. */
const AVERAGE_WEIGHT = 0.2;

interface Pending<Op, R> {
  op: Op;
  key: string;
  /** performance.now() when the call was queued (the global one, which tests' fake timers replace). */
  since: number;
  resolve: (result: R) => void;
  reject: (error: unknown) => void;
}

/**
 * Queues calls of one kind and sends them in batches: one statement at a time, more (up to
 * `maxInFlight`) while full batches are waiting. Every caller's promise settles with its own
 * operation's result or error.
 */
export class Batcher<Op, R> {
  readonly stats: BatcherStats = { batches: 0, batchedOps: 0, singles: 0, splitBatches: 0, largestBatch: 0, startedEarly: 0, refused: 0, expired: 0 };
  private queue: Pending<Op, R>[] = [];
  private running = 0;
  /** Keys of the operations in flight: a later call with one of them waits for the next batch. */
  private readonly busy = new Set<string>();
  private idleWaiters: (() => void)[] = [];
  /** Wakes pump() for a call that waited startAfterMs or maxQueueWaitMs; armed only while calls wait. */
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  /** Running average of how long statements took (ms), for startAfter(). */
  private typicalMs = 0;

  constructor(private readonly options: BatcherOptions<Op, R>) {
    if (options.maxInFlight < 1 || options.maxBatch < 1) throw new RangeError("maxInFlight and maxBatch must be at least 1");
    if (options.maxQueued < 1) throw new RangeError("maxQueued must be at least 1");
  }

  /** Queues `op`; it goes out at once if a slot is free. */
  submit(op: Op): Promise<R> {
    if (this.queue.length >= this.options.maxQueued) {
      this.stats.refused++;
      return Promise.reject(new StoreUnavailableError(`the store is behind: ${this.queue.length} writes are queued already`));
    }
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ op, key: this.options.key(op), since: performance.now(), resolve, reject });
      this.pump();
    });
  }

  /** Calls waiting to be sent (not in flight). */
  get queued(): number {
    return this.queue.length;
  }

  /** Resolves once nothing is queued or in flight (close() waits for accepted writes). */
  drain(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.running === 0;
  }

  private pump(): void {
    const now = performance.now();
    this.expire(now);
    let blocked = false;
    while (this.running < this.options.maxInFlight && this.queue.length > 0) {
      // Another statement in flight only for a full batch (see maxInFlight), or for a call that
      // has waited startAfterMs (see there); a lone call on an idle batcher goes out at once.
      const early = this.running > 0 && this.queue.length < this.options.maxBatch;
      if (early && !this.waitedLong(now)) break;
      const batch = this.take();
      // Everything queued waits for a key already in flight: finish() pumps again.
      if (batch.length === 0) {
        blocked = true;
        break;
      }
      if (early) this.stats.startedEarly++;
      this.running++;
      for (const p of batch) this.busy.add(p.key);
      void this.send(batch).finally(() => this.finish(batch, now));
    }
    this.arm(now, blocked);
  }

  private waitedLong(now: number): boolean {
    const oldest = this.queue[0];
    return oldest !== undefined && now - oldest.since >= this.startAfter();
  }

  /** How long a call waits behind running statements before it gets one of its own (see startAfterMs). */
  private startAfter(): number {
    const { startAfterMs, maxQueueWaitMs } = this.options;
    return Math.min(Math.max(startAfterMs, SLOW_FACTOR * this.typicalMs), Math.max(startAfterMs, maxQueueWaitMs / 4));
  }

  /** Fails the calls queued longer than maxQueueWaitMs, unsent. */
  private expire(now: number): void {
    const oldest = this.queue[0];
    if (oldest === undefined || now - oldest.since < this.options.maxQueueWaitMs) return;
    const keep: Pending<Op, R>[] = [];
    for (const p of this.queue) {
      if (now - p.since < this.options.maxQueueWaitMs) {
        keep.push(p);
        continue;
      }
      this.stats.expired++;
      p.reject(new StoreUnavailableError(`the write was not sent: it waited ${Math.round(now - p.since)} ms behind statements that did not finish`));
    }
    this.queue = keep;
  }

  /**
   * Sets the timer for the next time pump() has something to do while calls wait: the oldest
   * call reaching startAfterMs (only if a slot is free and it is not just waiting for its key)
   * or maxQueueWaitMs.
   */
  private arm(now: number, blocked: boolean): void {
    const oldest = this.queue[0];
    if (oldest === undefined) return this.disarm();
    let at = oldest.since + this.options.maxQueueWaitMs;
    if (!blocked && this.running > 0 && this.running < this.options.maxInFlight) at = Math.min(at, oldest.since + this.startAfter());
    if (this.timer !== undefined && this.timerAt <= at) return;
    this.disarm();
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.pump();
      this.notifyIdle();
    }, Math.max(0, at - now));
    // Never what keeps a process alive: close() drains with the calls themselves.
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  /**
   * Takes the next batch from the queue in call order, skipping an operation whose key is in
   * flight or already in this batch: it, and every later call with its key, stays queued, so
   * the operations of one key keep their order.
   */
  private take(): Pending<Op, R>[] {
    const batch: Pending<Op, R>[] = [];
    const keys = new Set<string>();
    const rest: Pending<Op, R>[] = [];
    for (const p of this.queue) {
      if (batch.length < this.options.maxBatch && !this.busy.has(p.key) && !keys.has(p.key)) {
        batch.push(p);
        keys.add(p.key);
      } else {
        rest.push(p);
      }
    }
    this.queue = rest;
    return batch;
  }

  private finish(batch: readonly Pending<Op, R>[], sentAt: number): void {
    this.typicalMs += AVERAGE_WEIGHT * (performance.now() - sentAt - this.typicalMs);
    for (const p of batch) this.busy.delete(p.key);
    this.running--;
    this.pump();
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async send(batch: readonly Pending<Op, R>[]): Promise<void> {
    const [first] = batch;
    if (batch.length === 1 && first) return this.sendOne(first);
    this.stats.batches++;
    this.stats.batchedOps += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    let results: R[];
    try {
      results = await this.options.runBatch(batch.map((p) => p.op));
    } catch (error) {
      if (!this.options.retrySingly(error)) {
        for (const p of batch) p.reject(error);
        return;
      }
      this.stats.splitBatches++;
      await Promise.all(batch.map((p) => this.sendOne(p)));
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i] as R));
  }

  private async sendOne(p: Pending<Op, R>): Promise<void> {
    this.stats.singles++;
    try {
      p.resolve(await this.options.runOne(p.op));
    } catch (error) {
      p.reject(error);
    }
  }
}
