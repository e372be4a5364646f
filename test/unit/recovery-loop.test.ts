/**
 * The recovery loop as a rolling pool (docs/fencing.md, "The recovery loop"), on the real SQLite
 * store, executor, HTTP invoker and participant: a pass that hangs holds only its own slot, so
 * every other due transaction is claimed and finished meanwhile.
 */
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { TimingConfig } from "../../server/src/core/retry.ts";
import { AdjustableClock } from "../../server/src/core/clock.ts";
import { RecoveryLoop } from "../../server/src/cron/recovery-loop.ts";
import { ClaimTokens } from "../../server/src/service/claim.ts";
import type { Executor } from "../../server/src/service/executor.ts";
import type { SqliteStore } from "../../server/src/store/sqlite/sqlite-store.ts";
import type { Busi } from "../busi/index.ts";
import { newBranchRow, newTransRow, useExecutorRig } from "../helpers/executor-rig.ts";

const TIMING: TimingConfig = { retryInterval: 10_000, maxRetryInterval: 10_000, timeoutToFail: 35_000, requestTimeout: 30_000, retryJitter: 0 };

const clock = new AdjustableClock();
const bench = useExecutorRig("pool", clock);
let busi: Busi;
let store: SqliteStore;
let executor: Executor;
let loop: RecoveryLoop;

beforeEach(() => {
  busi = bench.busi;
  store = bench.rig.store;
  const logger = pino({ level: "silent" });
  executor = bench.rig.executor({ timing: TIMING, lease: { leaseMs: TIMING.retryInterval, marginMs: 1_000 }, logger });
  const tokens = new ClaimTokens();
  loop = new RecoveryLoop(store, executor, clock, { idleMs: 20, leaseMs: TIMING.retryInterval, batchSize: 4, concurrency: 4, newToken: () => tokens.next() }, logger);
});
afterEach(async () => {
  busi.releaseHung();
  await loop.stop();
  await executor.drain();
});

/** A one-step saga, due now. */
async function dueSaga(gid: string): Promise<void> {
  const now = clock.now();
  await store.saveNewTrans(newTransRow(gid, "saga", "submitted", now, { nextCronInterval: TIMING.retryInterval, nextCronTime: now - 1 }), [
    newBranchRow(gid, "01", "compensate", busi.url("TransOutRevert"), now),
    newBranchRow(gid, "01", "action", busi.url("TransOut"), now),
  ]);
}

describe("recovery loop", () => {
  it("a hung pass holds one slot: every other due transaction is claimed and finished meanwhile", async () => {
    busi.program({ gid: "slow" }, "HANG");
    await dueSaga("slow");
    const fast = Array.from({ length: 12 }, (_, i) => `fast-${String(i).padStart(2, "0")}`);
    for (const gid of fast) await dueSaga(gid);

    loop.start();
    // Twelve sagas through a pool of 4 with batches of 4, one slot taken by the hung pass the whole time.
    await vi.waitFor(async () => {
      const statuses = await Promise.all(fast.map(async (gid) => (await store.findTrans(gid))?.status));
      expect(statuses).toEqual(fast.map(() => "succeed"));
    }, { timeout: 10_000, interval: 20 });
    expect(busi.calls({ gid: "slow" }).map((c) => c.outcome)).toEqual(["HANG"]);
    expect((await store.findTrans("slow"))?.status).toBe("submitted");
  });

  it("tickOnce runs every due transaction once through the pool and answers when they are done", async () => {
    const gids = Array.from({ length: 10 }, (_, i) => `tick-${i}`);
    for (const gid of gids) await dueSaga(gid);
    expect(await loop.tickOnce()).toBe(10);
    for (const gid of gids) expect((await store.findTrans(gid))?.status).toBe("succeed");
    expect(busi.calls()).toHaveLength(10);
    expect(await loop.tickOnce()).toBe(0);
  });
});
