/**
 * Crash recovery with `deferBranchResults` (docs/deviations.md D14): a pass writes a branch's
 * result with its next write that happens anyway, not before the call that result unlocks. The
 * real coordinator runs as a child process on a SQLite file and is SIGKILLed at a crash point;
 * the restarted one takes the transaction over from a token that says results may be missing.
 *
 * What must hold: every branch that ran is either called again (a no-op behind a barrier) or
 * compensated, even though none of its results reached the store.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import { crashDuring, recover, useCrashHarness } from "../helpers/crash-harness.ts";

const harness = useCrashHarness("dtx-crash-deferred", { DTX_DEFER_BRANCH_RESULTS: "1" });
const { start, restart } = harness;
let busi: Busi;
beforeAll(() => {
  busi = harness.busi;
});

const calls = (gid: string): string[] => busi.calls({ gid }).map((c) => `${c.name}:${c.outcome}`);

describe("deferBranchResults: crash recovery", () => {
  it("a success not yet written when the coordinator died: the branch is called again and the saga succeeds", async () => {
    const gid = "deferred-before-second-call";
    const first = await start();
    await first.client.armCrash("beforeBranchCall", gid, 2);
    await crashDuring(first, first.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true })));
    expect(calls(gid)).toEqual(["TransOut:SUCCESS"]);

    const second = await restart(first);
    // TransOut's success was deferred, so the store still says prepared (sync mode would say succeed).
    expect(await second.client.branchStatuses(gid)).toEqual(["prepared", "prepared", "prepared", "prepared"]);
    await recover(second.client);

    expect(await second.client.status(gid)).toBe("succeed");
    expect(await second.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    expect(calls(gid)).toEqual(["TransOut:SUCCESS", "TransOut:SUCCESS", "TransIn:SUCCESS"]);
  });

  it("the doubt is handed on: a pass that took over and ended unfinished leaves a marked owner, and the next one compensates every step", async () => {
    const gid = "deferred-doubt-handed-on";
    const first = await start();
    await first.client.armCrash("beforeBranchCall", gid, 3);
    await crashDuring(first, first.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true, timeout_to_fail: 90 }, 3)));
    expect(calls(gid)).toEqual(["TransOut:SUCCESS", "TransIn:SUCCESS"]);

    const second = await restart(first);
    // The pass that takes over calls TransOut again, which errors: it ends unfinished.
    busi.program({ gid, name: "TransOut" }, "ERROR");
    await recover(second.client);
    expect(await second.client.status(gid)).toBe("submitted");
    expect((await second.client.query(gid)).transaction?.owner).toMatch(/:d$/);

    // The next pass (past the 90 s timeout) rolls back knowing results may be missing.
    await second.client.cron(60_000);
    await second.client.settle();
    expect(await second.client.status(gid)).toBe("failed");
    expect((await second.client.query(gid)).transaction?.owner).toBeUndefined();
    expect(busi.calls({ gid, op: "compensate" }).map((c) => c.name)).toEqual(["Step3Revert", "TransInRevert", "TransOutRevert"]);
  });

  it("a saga that times out after the crash compensates every step, the ones whose results were never written too", async () => {
    const gid = "deferred-timeout-after-crash";
    const first = await start();
    await first.client.armCrash("beforeBranchCall", gid, 3);
    await crashDuring(first, first.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true, timeout_to_fail: 30 }, 3)));
    expect(calls(gid)).toEqual(["TransOut:SUCCESS", "TransIn:SUCCESS"]);

    const second = await restart(first);
    expect(await second.client.branchStatuses(gid)).toEqual(["prepared", "prepared", "prepared", "prepared", "prepared", "prepared"]);
    // 60 s later the saga is past its 30 s timeout: the recovery pass rolls it back without calling any action.
    await recover(second.client);

    const q = await second.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    // Both actions ran with nothing in the store to say so; both are compensated, in reverse
    // order, and so is step 3, which never ran (a null compensation the barrier makes a no-op).
    expect(busi.calls({ gid, op: "compensate" }).map((c) => c.name)).toEqual(["Step3Revert", "TransInRevert", "TransOutRevert"]);
    expect(busi.calls({ gid, op: "action" }).map((c) => c.name)).toEqual(["TransOut", "TransIn"]);
  });
});
