/**
 * Fencing at the executor (docs/fencing.md), with the real SQLite store, the real HTTP invoker, a
 * real participant and the coordinator's AdjustableClock: a pass's lease covers its call's
 * deadline plus the margin; once another claim takes the trans the pass starts no further call,
 * cuts off the one in flight and writes nothing; a new claim of a gid still running in the same
 * process runs after the doomed pass instead of joining it.
 */
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { TimingConfig } from "../../server/src/core/retry.ts";
import type { TransGlobal } from "../../server/src/core/types.ts";
import type { AdjustableClock } from "../../server/src/core/clock.ts";
import { ClaimTokens } from "../../server/src/service/claim.ts";
import type { Executor } from "../../server/src/service/executor.ts";
import type { SqliteStore } from "../../server/src/store/sqlite/sqlite-store.ts";
import type { Busi } from "../busi/index.ts";
import type { ExecutorRig } from "../helpers/executor-rig.ts";
import { newBranchRow, newTransRow, useExecutorRig } from "../helpers/executor-rig.ts";

const TIMING: TimingConfig = { retryInterval: 1_000, maxRetryInterval: 1_000, timeoutToFail: 35_000, requestTimeout: 5_000, retryJitter: 0 };
const LEASE = { leaseMs: 1_000, marginMs: 200 };

const bench = useExecutorRig("fencing");
let busi: Busi;
let rig: ExecutorRig;
let store: SqliteStore;
let clock: AdjustableClock;
let logs: { msg?: string; gid?: string; owner?: string }[];
let executor: Executor;

beforeEach(() => {
  ({ busi, rig } = bench);
  ({ store, clock } = rig);
  logs = [];
  const logger = pino({ level: "info" }, { write: (line: string) => logs.push(JSON.parse(line) as (typeof logs)[number]) });
  executor = rig.executor({ timing: TIMING, lease: LEASE, logger });
});
afterEach(async () => {
  busi.releaseHung();
  await executor.drain();
});

/** A two-step saga held by the claim `owner`, its lease one leaseMs from now. */
async function claimedSaga(gid: string, owner: string): Promise<TransGlobal> {
  const now = clock.now();
  const trans = newTransRow(gid, "saga", "submitted", now, { nextCronInterval: TIMING.retryInterval, nextCronTime: now + LEASE.leaseMs, owner });
  const branch = (branchId: string, op: string, name: string) => newBranchRow(gid, branchId, op, busi.url(name), now);
  const branches = [branch("01", "compensate", "TransOutRevert"), branch("01", "action", "TransOut"), branch("02", "compensate", "TransInRevert"), branch("02", "action", "TransIn")];
  expect(await store.saveNewTrans(trans, branches)).toBe("created");
  return { ...trans, id: 0 };
}

async function storedState(gid: string): Promise<{ status?: string; owner?: string; branches: string[] }> {
  const t = await store.findTrans(gid);
  return { status: t?.status, owner: t?.owner, branches: (await store.findBranches(gid)).map((b) => b.status) };
}

describe("executor fencing", () => {
  it("every claim gets a token of its own, on one coordinator and across coordinators", () => {
    const [one, two] = [new ClaimTokens(), new ClaimTokens()];
    const tokens = Array.from({ length: 2_000 }, (_, i) => (i % 2 === 0 ? one : two).next());
    expect(new Set(tokens).size).toBe(tokens.length);
    // They fit dtm's owner column (varchar(128)).
    expect(Math.max(...tokens.map((t) => t.length))).toBeLessThan(128);
  });

  it.each([
    { token: "A", writes: ["findBranches", "updateTrans", "updateTrans"], why: "record TransOut's success before calling TransIn, record the end" },
    { token: "A:d", writes: ["findBranches", "updateTrans"], why: "deferBranchResults (a token ending in :d): both results go with the final status" },
  ])("costs no extra store trip when the lease covers the calls (the default timings), claim $token", async ({ token, writes }) => {
    // retryInterval 10 s, requestTimeout 3 s, leaseMargin 1 s: the dtx defaults.
    const timing: TimingConfig = { ...TIMING, retryInterval: 10_000, maxRetryInterval: 60_000, requestTimeout: 3_000 };
    const ops: string[] = [];
    const counted = new Proxy(store, {
      get(target, name, receiver) {
        const value: unknown = Reflect.get(target, name, receiver);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          ops.push(String(name));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const plain = rig.executor({ store: counted, timing, lease: { leaseMs: timing.retryInterval, marginMs: 1_000 } });
    const trans = await claimedSaga(`default-${token}`, token);
    const result = await plain.process({ ...trans, nextCronTime: clock.now() + timing.retryInterval });
    expect(result.trans.status).toBe("succeed");
    expect(ops).toEqual(writes);
    expect((await storedState(`default-${token}`)).branches).toEqual(["prepared", "succeed", "prepared", "succeed"]);
  });

  it("the lease covers a call's deadline plus the margin before the call goes out", async () => {
    busi.program({ name: "TransOut" }, "HANG");
    const pass = executor.process(await claimedSaga("cover", "A"));
    const [call] = await busi.waitForCalls({ name: "TransOut" }, 1);
    const lease = (await store.findTrans("cover"))?.nextCronTime ?? 0;
    // The claim's lease was one second; the call may take five: it was renewed first.
    expect(lease).toBeGreaterThanOrEqual((call?.receivedAt ?? 0) + TIMING.requestTimeout + LEASE.marginMs - 50);
    // Another coordinator polling after the plain lease, but before the call's deadline, finds nothing due.
    expect(await store.claimDue(clock.now() + 2 * LEASE.leaseMs, clock.now() + 3 * LEASE.leaseMs, 10, "B")).toEqual([]);
    busi.releaseHung();
    await pass;
  });

  it("a pass whose claim was taken makes no further call, cuts off the call in flight and writes nothing", async () => {
    busi.program({ name: "TransOut" }, "HANG");
    const started = Date.now();
    const pass = executor.process(await claimedSaga("taken", "A"));
    await busi.waitForCalls({ name: "TransOut" }, 1);
    // The pass is stalled past its lease (as in a GC pause); another coordinator claims the trans.
    clock.advance(TIMING.requestTimeout + 2 * LEASE.leaseMs);
    const [claimed] = await store.claimDue(clock.now(), clock.now() + LEASE.leaseMs, 10, "B");
    expect(claimed?.gid).toBe("taken");

    // The background renewal (every leaseMs/3) is refused: the pass stops at once, long before
    // its call's own 5 s timeout.
    const result = await pass;
    expect(result.lostRace).toBe(true);
    expect(Date.now() - started).toBeLessThan(TIMING.requestTimeout);
    // The participant sees the connection of the cut-off call close.
    const [cut] = busi.calls({ name: "TransOut" });
    await vi.waitFor(() => expect(cut?.answeredAt).toBeDefined(), { timeout: 2_000 });
    expect(busi.calls().map((c) => c.name)).toEqual(["TransOut"]);
    expect(await storedState("taken")).toEqual({ status: "submitted", owner: "B", branches: ["prepared", "prepared", "prepared", "prepared"] });
    expect(logs.filter((l) => l.msg === "lost the claim on the transaction; pass stopped").map((l) => [l.gid, l.owner])).toEqual([["taken", "A"]]);
  });

  it("a stale pass's write is refused even when its call succeeded, and it calls nothing after", async () => {
    busi.setLatency({ name: "TransOut" }, 300);
    const pass = executor.process(await claimedSaga("stale", "A"));
    await busi.waitForCalls({ name: "TransOut" }, 1);
    clock.advance(TIMING.requestTimeout + 2 * LEASE.leaseMs);
    expect((await store.claimDue(clock.now(), clock.now() + LEASE.leaseMs, 10, "B")).map((t) => t.gid)).toEqual(["stale"]);
    const result = await pass;
    expect(result.lostRace).toBe(true);
    // TransOut answered SUCCESS, but recording it (before TransIn) was refused: TransIn was never called.
    expect(busi.calls().map((c) => c.name)).toEqual(["TransOut"]);
    expect(await storedState("stale")).toEqual({ status: "submitted", owner: "B", branches: ["prepared", "prepared", "prepared", "prepared"] });
  });

  it("a new claim of a gid still running in this process runs after the doomed pass, not joined to it", async () => {
    busi.program({ name: "TransOut" }, "HANG");
    const trans = await claimedSaga("reclaimed", "A");
    const first = executor.process(trans);
    await busi.waitForCalls({ name: "TransOut" }, 1);
    clock.advance(TIMING.requestTimeout + 2 * LEASE.leaseMs);
    const [again] = await store.claimDue(clock.now(), clock.now() + LEASE.leaseMs, 10, "B");
    if (!again) throw new Error("the second claim found nothing due");
    const second = executor.process(again);
    expect(second).not.toBe(first);
    expect(executor.process(again)).toBe(second);

    expect((await first).lostRace).toBe(true);
    const result = await second;
    expect(result).toMatchObject({ lostRace: false, trans: { status: "succeed", owner: "" } });
    const calls = busi.calls({ name: "TransOut" });
    expect(calls.map((c) => c.outcome)).toEqual(["HANG", "SUCCESS"]);
    // The first call was over (cut off) before the second began.
    expect(calls[0]?.answeredAt).toBeLessThanOrEqual(calls[1]?.receivedAt ?? 0);
    expect(await storedState("reclaimed")).toEqual({ status: "succeed", owner: "", branches: ["prepared", "succeed", "prepared", "succeed"] });
  });
});
