/**
 * The group-commit Batcher's fault limits (server/src/store/sql/batcher.ts): a statement that
 * hangs delays the calls behind it only by startAfterMs, the queue is bounded, and a call that
 * could not be sent within maxQueueWaitMs fails unsent. Time is vitest's fake clock.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { StoreUnavailableError } from "../../server/src/store/store-errors.ts";
import { Batcher } from "../../server/src/store/sql/batcher.ts";
import type { BatcherOptions } from "../../server/src/store/sql/batcher.ts";

/** A batcher whose statements finish only when the test says so; `sent` records what each carried. */
function controlled(limits: Partial<BatcherOptions<string, string>> = {}) {
  const sent: string[][] = [];
  const finish: (() => void)[] = [];
  const run = (ops: readonly string[]): Promise<string[]> => {
    sent.push([...ops]);
    return new Promise((resolve) => finish.push(() => resolve(ops.map((op) => `done ${op}`))));
  };
  const batcher = new Batcher<string, string>({
    maxInFlight: 4, maxBatch: 64, startAfterMs: 50, maxQueued: 100, maxQueueWaitMs: 2_000,
    key: (op) => op.split(":")[0] ?? op, retrySingly: () => true,
    runBatch: run, runOne: async (op) => (await run([op]))[0] ?? "",
    ...limits,
  });
  return { batcher, sent, finish };
}

describe("Batcher under a statement that does not finish", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setImmediate", "performance"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("starts another statement for calls that waited startAfterMs, not before, though no batch is full", async () => {
    const { batcher, sent, finish } = controlled();
    const hung = batcher.submit("a");
    const behind = ["b", "c"].map((op) => batcher.submit(op));
    expect(sent).toEqual([["a"]]);
    await vi.advanceTimersByTimeAsync(49);
    expect(sent).toEqual([["a"]]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toEqual([["a"], ["b", "c"]]);
    expect(batcher.stats.startedEarly).toBe(1);
    // b and c finish while a still hangs.
    finish[1]?.();
    expect(await Promise.all(behind)).toEqual(["done b", "done c"]);
    finish[0]?.();
    expect(await hung).toBe("done a");
  });

  it("waits longer before starting another statement when recent statements were slow (a busy database, not a hung one)", async () => {
    const { batcher, sent, finish } = controlled({ maxQueueWaitMs: 10_000 });
    // Statements of 200 ms each: the running average approaches 200 ms, so the wait approaches 800 ms.
    for (let i = 0; i < 20; i++) {
      const done = batcher.submit(`s${i}`);
      await vi.advanceTimersByTimeAsync(200);
      finish[i]?.();
      await done;
      await batcher.drain();
    }
    void batcher.submit("slow");
    void batcher.submit("behind");
    await vi.advanceTimersByTimeAsync(700);
    expect(sent.at(-1)).toEqual(["slow"]);
    await vi.advanceTimersByTimeAsync(100);
    expect(sent.at(-1)).toEqual(["behind"]);
  });

  it("keeps per-key order: a call whose key is in flight waits for it, whatever the time", async () => {
    const { batcher, sent, finish } = controlled();
    const first = batcher.submit("x:1");
    const second = batcher.submit("x:2");
    const other = batcher.submit("y:1");
    await vi.advanceTimersByTimeAsync(60);
    // y:1 went out early; x:2 stays queued behind x:1.
    expect(sent).toEqual([["x:1"], ["y:1"]]);
    finish[0]?.();
    await vi.advanceTimersByTimeAsync(0);
    expect(sent).toEqual([["x:1"], ["y:1"], ["x:2"]]);
    finish[1]?.();
    finish[2]?.();
    expect(await Promise.all([first, second, other])).toEqual(["done x:1", "done x:2", "done y:1"]);
  });

  it("uses at most maxInFlight statements; calls beyond wait", async () => {
    const { batcher, sent } = controlled({ maxInFlight: 2 });
    void batcher.submit("a");
    void batcher.submit("b");
    await vi.advanceTimersByTimeAsync(60);
    void batcher.submit("c");
    await vi.advanceTimersByTimeAsync(60);
    expect(sent).toEqual([["a"], ["b"]]);
    expect(batcher.queued).toBe(1);
  });

  it("refuses a call at once, with StoreUnavailableError, when maxQueued calls wait", async () => {
    const { batcher, sent } = controlled({ maxInFlight: 1, maxQueued: 3 });
    void batcher.submit("a");
    const queued = ["b", "c", "d"].map((op) => batcher.submit(op));
    for (const q of queued) q.catch(() => undefined);
    await expect(batcher.submit("e")).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(batcher.stats.refused).toBe(1);
    expect(sent).toEqual([["a"]]);
  });

  it("fails calls still queued after maxQueueWaitMs without ever sending them", async () => {
    const { batcher, sent, finish } = controlled({ maxInFlight: 1 });
    const hung = batcher.submit("a");
    const stuck = batcher.submit("b");
    const outcome = stuck.then(() => "sent", (error: unknown) => error);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await outcome).toBeInstanceOf(StoreUnavailableError);
    expect(batcher.stats.expired).toBe(1);
    // The hung statement ends (its driver timed it out): b is not sent afterwards.
    finish[0]?.();
    expect(await hung).toBe("done a");
    await vi.advanceTimersByTimeAsync(100);
    expect(sent).toEqual([["a"]]);
    await batcher.drain();
  });
});
