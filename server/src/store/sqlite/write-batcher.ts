import type { Database, Statement } from "better-sqlite3";

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

interface QueuedWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for the embedded store. Writes queued while the event loop is busy are applied
 * together in one SQLite transaction, so N concurrent transactions share one fsync instead of
 * paying N (docs/architecture.md#group-commit). No timer is involved: a flush is scheduled with setImmediate,
 * so a lone write commits at once and batches form only under load.
 *
 * A batch first runs as one plain transaction. If a write throws, the batch is rolled back and
 * replayed with a savepoint per write, so the bad write fails alone and the others still commit.
 * A failed COMMIT fails them all.
 */
export class WriteBatcher {
  private queue: QueuedWrite[] = [];
  private scheduled = false;
  /** Largest batch seen; exposed for benchmarks. */
  maxBatch = 0;

  private readonly begin: Statement;
  private readonly commit: Statement;
  private readonly rollback: Statement;

  constructor(private readonly db: Database) {
    this.begin = db.prepare("BEGIN IMMEDIATE");
    this.commit = db.prepare("COMMIT");
    this.rollback = db.prepare("ROLLBACK");
  }

  write<T>(run: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    if (batch.length > this.maxBatch) this.maxBatch = batch.length;
    let outcomes: Outcome[];
    try {
      outcomes = this.applyFast(batch) ?? this.applyIsolated(batch);
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    batch.forEach((item, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) item.resolve(outcome.value);
      else item.reject(outcome ? outcome.error : new Error("write was not applied"));
    });
  }

  /**
   * The common case: every write succeeds, so the batch runs in one transaction without a
   * savepoint per write. Returns undefined (having rolled everything back) if any write threw.
   */
  private applyFast(batch: QueuedWrite[]): Outcome[] | undefined {
    const outcomes: Outcome[] = [];
    let failed = false;
    this.fastTxn(() => {
      for (const item of batch) outcomes.push({ ok: true, value: item.run() });
    }, () => {
      failed = true;
    });
    return failed ? undefined : outcomes;
  }

  /** The rare case: replay the batch with a savepoint per write, so one bad write fails alone. */
  private applyIsolated(batch: QueuedWrite[]): Outcome[] {
    const outcomes: Outcome[] = [];
    this.db.transaction(() => {
      for (const item of batch) {
        try {
          outcomes.push({ ok: true, value: this.db.transaction(item.run)() });
        } catch (error) {
          outcomes.push({ ok: false, error });
        }
      }
    }).immediate();
    return outcomes;
  }

  /** Runs `body` in an IMMEDIATE transaction; a throw inside rolls back and calls `onThrow`. */
  private fastTxn(body: () => void, onThrow: () => void): void {
    this.begin.run();
    try {
      body();
    } catch {
      this.rollback.run();
      onThrow();
      return;
    }
    this.commit.run();
  }
}
