/**
 * The retention loop (server/src/cron/retention-loop.ts, docs/retention.md) on a real SQLite
 * store, with the coordinator's AdjustableClock and an injected wait: rounds, batches and pauses
 * happen when the test says, and nothing sleeps.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AdjustableClock } from "../../server/src/core/clock.ts";
import type { Wait } from "../../server/src/cron/retention-loop.ts";
import { RetentionLoop } from "../../server/src/cron/retention-loop.ts";
import { createLogger } from "../../server/src/logger.ts";
import { SqliteStore } from "../../server/src/store/sqlite/sqlite-store.ts";
import type { RetentionBatch } from "../../server/src/store/store.ts";
import { sagaBranches, trans } from "../store/suites/data.ts";

const DAY = 24 * 3600 * 1000;
const AGE = 7 * DAY;
const logger = createLogger("silent");

/** A wait the test releases by hand; `calls` records every requested wait. */
class ManualWait {
  readonly calls: number[] = [];
  private pending: { resolve: () => void }[] = [];

  readonly wait: Wait = (ms, signal) => {
    this.calls.push(ms);
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const entry = { resolve };
      this.pending.push(entry);
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  };

  /** Lets the oldest pending wait end. */
  release(): void {
    this.pending.shift()?.resolve();
  }

  /** Resolves once `n` waits have been asked for (a real event: the loop reaching its next wait). */
  async until(n: number): Promise<void> {
    for (let i = 0; i < 1000 && this.calls.length < n; i++) await new Promise((r) => setImmediate(r));
    expect(this.calls.length).toBeGreaterThanOrEqual(n);
  }
}

const noWait: Wait = async () => undefined;

describe("RetentionLoop", () => {
  let dir = "";
  let store: SqliteStore;
  let clock: AdjustableClock;
  let loops: RetentionLoop[] = [];
  const removed: RetentionBatch[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "dtx-retention-"));
    store = new SqliteStore({ path: join(dir, "dtx.db") });
    clock = new AdjustableClock();
    removed.length = 0;
  });
  afterEach(async () => {
    await Promise.all(loops.map((l) => l.stop()));
    loops = [];
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const loop = (wait: Wait, options: Partial<{ batchSize: number; batchPauseMs: number; intervalMs: number }> = {}, random = () => 0.5): RetentionLoop => {
    const l = new RetentionLoop(store, clock, { finishedAgeMs: AGE, intervalMs: 300_000, batchSize: 3, batchPauseMs: 100, ...options }, logger, (b) => removed.push(b), wait, random);
    loops.push(l);
    return l;
  };

  async function save(gid: string, status: "succeed" | "failed" | "submitted", updatedAgo: number): Promise<void> {
    const at = clock.now() - updatedAgo;
    await store.saveNewTrans(trans(gid, { status, createTime: at, updateTime: at, nextCronTime: at }), sagaBranches(gid, 1));
  }

  it("a round deletes finished transactions older than the age, in batches with a pause between, and keeps the rest", async () => {
    for (let i = 0; i < 7; i++) await save(`old${i}`, i % 2 === 0 ? "succeed" : "failed", AGE + DAY + i);
    await save("old-unfinished", "submitted", 100 * DAY);
    await save("young", "succeed", AGE - DAY);
    const pauses: number[] = [];
    const paced = loop(async (ms) => {
      pauses.push(ms);
    });

    expect(await paced.runOnce()).toEqual({ deleted: 7, pruned: 0, batches: 3 });
    expect(removed.map((b) => b.deleted)).toEqual([3, 3, 1]);
    expect(pauses).toEqual([100, 100]);
    for (let i = 0; i < 7; i++) expect(await store.findTrans(`old${i}`)).toBeNull();
    expect((await store.findTrans("old-unfinished"))?.status).toBe("submitted");
    expect(await store.findBranches("old-unfinished")).toHaveLength(2);
    expect((await store.findTrans("young"))?.status).toBe("succeed");
  });

  it("the cut-off follows the injected clock: a kept trans goes once the clock passes its age", async () => {
    await save("young", "succeed", AGE - DAY);
    const l = loop(noWait);
    expect(await l.runOnce()).toMatchObject({ deleted: 0 });
    clock.advance(DAY - 60_000); // a minute short (the clock is wall time plus an offset, so leave room)
    expect(await l.runOnce()).toMatchObject({ deleted: 0 });
    clock.advance(120_000);
    expect(await l.runOnce()).toMatchObject({ deleted: 1, batches: 1 });
    expect(await store.findTrans("young")).toBeNull();
    expect(await store.findBranches("young")).toEqual([]);
  });

  it("runs a round after each jittered interval, and stop() ends a pending wait at once", async () => {
    await save("old", "succeed", AGE + DAY);
    const wait = new ManualWait();
    const l = loop(wait.wait, { intervalMs: 300_000 }, () => 1);
    l.start();
    await wait.until(1);
    // random() = 1: the top of the ±10 % jitter
    expect(wait.calls[0]).toBeCloseTo(330_000);
    expect(await store.findTrans("old")).not.toBeNull();
    wait.release();
    await wait.until(2); // the round ran, and the loop waits for the next one
    expect(await store.findTrans("old")).toBeNull();
    expect(removed).toEqual([{ deleted: 1, pruned: 0, more: false }]);
    await l.stop();
    expect(wait.calls).toHaveLength(2);
  });

  it("stop() during a round's pause ends it after the batch that ran; nothing runs afterwards", async () => {
    for (let i = 0; i < 7; i++) await save(`old${i}`, "succeed", AGE + DAY + i);
    const wait = new ManualWait();
    const l = loop(wait.wait);
    const round = l.runOnce();
    await wait.until(1); // the pause after the first batch
    expect(wait.calls).toEqual([100]);
    await l.stop();
    expect(await round).toEqual({ deleted: 3, pruned: 0, batches: 1 });
    expect((await store.scanTrans({ position: "", limit: 100 })).transactions).toHaveLength(4);
  });

  it("a round that fails (the store is gone) is logged by the loop, which keeps waiting for the next round", async () => {
    const wait = new ManualWait();
    const l = loop(wait.wait);
    await store.close();
    l.start();
    await wait.until(1);
    wait.release();
    await wait.until(2);
    await l.stop();
    store = new SqliteStore({ path: join(dir, "dtx.db") }); // for afterEach
  });
});
