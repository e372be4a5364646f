import type { Database } from "better-sqlite3";

interface QueuedWrite {
  run: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for the embedded store. Writes queued while the event loop is busy are applied
 * together in one SQLite transaction, so N concurrent transactions share one fsync instead of
 * paying N (PERFORMANCE §5.3). No timer is involved: a flush is scheduled with setImmediate,
 * so a lone write commits at once and batches form only under load.
 *
 * Each write runs inside its own savepoint: one that throws is rolled back alone and its caller
 * gets the error, while the others in the batch still commit. A failed COMMIT fails them all.
 */
export class WriteBatcher {
  private queue: QueuedWrite[] = [];
  private scheduled = false;
  /** Largest batch seen; exposed for benchmarks. */
  maxBatch = 0;

  constructor(private readonly db: Database) {}

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
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      this.db.transaction(() => {
        for (const item of batch) {
          try {
            outcomes.push({ ok: true, value: this.db.transaction(item.run)() });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      }).immediate();
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
}
