/**
 * A branch registered while a cron pass is already running on its prepared TCC / XA (after the
 * pass read the branches, before it timed the trans out) is rolled back too. Found by the chaos
 * harness, seed 8, store mysql, profile smoke (gids c8-94, c8-95): the pass went prepared ->
 * aborting -> failed by the branch list it had read first, so the XA branch stayed prepared
 * (holding its row locks) and the TCC try was never cancelled.
 *
 * Real SQLite store, real HTTP invoker and busi participant; the registration is made to land
 * between the pass's read and its status write by doing it right after that read.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { TimingConfig } from "../../server/src/core/retry.ts";
import type { Store } from "../../server/src/store/store.ts";
import type { Busi } from "../busi/index.ts";
import type { ExecutorRig } from "../helpers/executor-rig.ts";
import { newBranchRow, newTransRow, useExecutorRig } from "../helpers/executor-rig.ts";

const TIMING: TimingConfig = { retryInterval: 1_000, maxRetryInterval: 1_000, timeoutToFail: 5_000, requestTimeout: 5_000, retryJitter: 0 };
const LEASE = { leaseMs: 3_000, marginMs: 200 };

const bench = useExecutorRig("late-registration");
let busi: Busi;
let rig: ExecutorRig;

beforeEach(() => {
  ({ busi, rig } = bench);
});

/** The store, except that the first findBranches of `gid` is followed at once by `register`. */
function registeringAfterFirstRead(gid: string, register: () => Promise<void>): Store {
  let done = false;
  return new Proxy(rig.store, {
    get(target, name, receiver) {
      const value: unknown = Reflect.get(target, name, receiver);
      if (typeof value !== "function") return value;
      if (name !== "findBranches") return value.bind(target);
      return async (wanted: string) => {
        const branches = await target.findBranches(wanted);
        if (wanted === gid && !done) {
          done = true;
          await register();
        }
        return branches;
      };
    },
  });
}

describe("a branch registered while a pass times its trans out", () => {
  it.each([
    { type: "tcc" as const, ops: ["cancel", "confirm"], rollback: "cancel" },
    { type: "xa" as const, ops: ["rollback", "commit"], rollback: "rollback" },
  ])("$type: the timed-out trans rolls back the late branch too", async ({ type, ops, rollback }) => {
    const gid = `late-${type}`;
    const now = rig.clock.now();
    const trans = newTransRow(gid, type, "prepared", now, {
      createTime: now - 2 * TIMING.timeoutToFail, nextCronInterval: TIMING.retryInterval, nextCronTime: now + LEASE.leaseMs, owner: "A",
    });
    expect(await rig.store.saveNewTrans(trans, [])).toBe("created");
    const racing = registeringAfterFirstRead(gid, async () => {
      expect(await rig.store.appendBranches(gid, "prepared", ops.map((op) => newBranchRow(gid, "01", op, busi.url(`Late-${op}`), now)), now)).toBe("saved");
    });
    const executor = rig.executor({ store: racing, timing: TIMING, lease: LEASE });

    const result = await executor.process({ ...trans, id: 0 });

    expect(result.trans.status).toBe("failed");
    expect(busi.calls({ gid }).map((c) => `${c.branchId} ${c.op}`)).toEqual([`01 ${rollback}`]);
    expect((await rig.store.findBranches(gid)).map((b) => `${b.op} ${b.status}`)).toEqual(ops.map((op) => `${op} ${op === rollback ? "succeed" : "prepared"}`));
  });
});
