/**
 * Crash recovery end to end: the real coordinator runs as a child process on a SQLite file, is
 * SIGKILLed while sagas are in flight (by an armed crash point or by the test), is restarted on the
 * same file, and the cron (driven through the test-control API) must finish every saga with the
 * statuses and participant calls docs/protocol.md#saga prescribes.
 *
 * No sleeps: every wait is on an event (a busi call, the child's exit, an HTTP response).
 *
 * Both coordinators of a case run with a 30 s retry interval, so nothing becomes due in real time
 * during a test: the restarted coordinator's own startup cron round finds nothing, and recovery is
 * driven only by `cron(60_000)` (the clock offset does not survive a restart, so it is advanced
 * after it). That makes the call log deterministic enough to assert order and counts.
 *
 * Branch results are written before the call they unlock (`deferBranchResults` off), the mode whose
 * recovery repeats no answered call; the deferred default has its own cases in
 * crash-deferred-results.test.ts (docs/deviations.md D14).
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { Busi, BusiCall } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import { crashDuring, LONG_REQUEST_TIMEOUT, recover, useCrashHarness } from "../helpers/crash-harness.ts";

const harness = useCrashHarness("dtx-crash", { DTX_DEFER_BRANCH_RESULTS: "0" });
const { start, restart } = harness;
let busi: Busi;
beforeAll(() => {
  busi = harness.busi;
});

const names = (gid: string): string[] => busi.calls({ gid }).map((c) => c.name);
const count = (gid: string, name: string): number => busi.calls({ gid, name }).length;
const compensations = (gid: string): string[] => busi.calls({ gid, op: "compensate" }).map((c) => c.name);

/** Every action call of step k > 0 comes after a successful call of step k-1's action (sequential saga). */
function expectForwardOrder(gid: string, actions: readonly string[]): void {
  const calls = busi.calls({ gid, op: "action" });
  for (let k = 1; k < actions.length; k++) {
    for (const call of calls.filter((c) => c.name === actions[k])) {
      const predecessorOk = calls.some((p: BusiCall) => p.name === actions[k - 1] && p.outcome === "SUCCESS" && p.seq < call.seq);
      expect(predecessorOk, `${gid}: ${actions[k]} #${call.seq} started before ${actions[k - 1]} succeeded`).toBe(true);
    }
  }
}

describe("saga crash recovery (coordinator SIGKILLed and restarted on the same SQLite file)", () => {
  it("1. killed before the second branch call: resumes and succeeds without compensating", async () => {
    const gid = "crash-before-call";
    const first = await start();
    await first.client.armCrash("beforeBranchCall", gid, 2);
    await crashDuring(first, first.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true })));
    // The first action went out; the second never did.
    expect(names(gid)).toEqual(["TransOut"]);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);

    expect(await second.client.status(gid)).toBe("succeed");
    expect(await second.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    expect(count(gid, "TransOut")).toBeGreaterThanOrEqual(1);
    expect(count(gid, "TransOut")).toBeLessThanOrEqual(2);
    expect(count(gid, "TransIn")).toBe(1);
    expect(compensations(gid)).toEqual([]);
    expectForwardOrder(gid, ["TransOut", "TransIn"]);
  });

  it("2. killed while the second branch call hangs: the call is made again and the saga succeeds", async () => {
    const gid = "crash-during-call";
    busi.program({ gid, name: "TransIn" }, "HANG");
    const first = await start();
    const submitting = first.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true, request_timeout: LONG_REQUEST_TIMEOUT }));
    const settled = submitting.then(() => "answered", () => "failed");
    await busi.waitForCalls({ gid, name: "TransIn" }, 1);
    expect(await first.kill()).toBe("SIGKILL");
    expect(await settled).toBe("failed");
    expect(names(gid)).toEqual(["TransOut", "TransIn"]);

    const second = await restart(first);
    busi.releaseHung();
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);

    expect(await second.client.status(gid)).toBe("succeed");
    expect(await second.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    expect(count(gid, "TransOut")).toBeGreaterThanOrEqual(1);
    const transIn = busi.calls({ gid, name: "TransIn" });
    expect(transIn.map((c) => c.outcome)).toEqual(["HANG", "SUCCESS"]);
    expect(compensations(gid)).toEqual([]);
    expectForwardOrder(gid, ["TransOut", "TransIn"]);
  });

  it.each([
    { hit: 1, before: ["TransOut"] },
    { hit: 2, before: ["TransOut", "TransIn"] },
  ])("3. killed after branch answer #$hit, before its status is written: succeeds after restart", async ({ hit, before }) => {
    const gid = `crash-after-call-${hit}`;
    const first = await start();
    await first.client.armCrash("afterBranchCall", gid, hit);
    await crashDuring(first, first.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true })));
    expect(names(gid)).toEqual(before);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);

    expect(await second.client.status(gid)).toBe("succeed");
    expect(await second.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    for (const action of ["TransOut", "TransIn"]) {
      expect(count(gid, action)).toBeGreaterThanOrEqual(1);
      expect(count(gid, action)).toBeLessThanOrEqual(2);
    }
    expect(compensations(gid)).toEqual([]);
    expectForwardOrder(gid, ["TransOut", "TransIn"]);
  });

  it("4. killed before the 'aborting' write after a FAILURE: rolls back in reverse after restart", async () => {
    const gid = "crash-before-aborting";
    // The failure was never recorded, so the action may be called again after the restart: it fails again.
    busi.programAlways({ gid, name: "TransIn" }, "FAILURE");
    const first = await start();
    await first.client.armCrash("beforeStatusWrite", gid, 1);
    await crashDuring(first, first.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true })));
    expect(names(gid)).toEqual(["TransOut", "TransIn"]);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);

    const q = await second.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toBe("busi failure"); // the branch's own message field
    expect(q.branches.map((b) => b.status)).toEqual(["succeed", "succeed", "succeed", "failed"]);
    expect(count(gid, "TransOut")).toBeGreaterThanOrEqual(1);
    expect(count(gid, "TransOut")).toBeLessThanOrEqual(2);
    expect(count(gid, "TransIn")).toBeGreaterThanOrEqual(1);
    expect(count(gid, "TransIn")).toBeLessThanOrEqual(2);
    expect(compensations(gid)).toEqual(["TransInRevert", "TransOutRevert"]);
    // Compensation only starts once the forward phase is over.
    const lastAction = Math.max(...busi.calls({ gid, op: "action" }).map((c) => c.seq));
    expect(busi.calls({ gid, op: "compensate" }).every((c) => c.seq > lastAction)).toBe(true);
    expectForwardOrder(gid, ["TransOut", "TransIn"]);
  });

  it("5. killed mid-compensation: finishes the rollback in order and never compensates an unstarted step", async () => {
    const gid = "crash-mid-compensation";
    busi.programAlways({ gid, name: "TransIn" }, "FAILURE");
    const first = await start();
    // Answers: TransOut (1), TransIn FAILURE (2), TransInRevert (3) -> die before recording it.
    await first.client.armCrash("afterBranchCall", gid, 3);
    await crashDuring(first, first.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }, 3)));
    expect(names(gid)).toEqual(["TransOut", "TransIn", "TransInRevert"]);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe("aborting");
    // The first compensation's success was not recorded, so it runs again; make that retry fail once:
    // step 1 must still wait for step 2's rollback, which only succeeds on the next cron round.
    busi.program({ gid, name: "TransInRevert" }, "ERROR");
    await recover(second.client);
    expect(compensations(gid)).not.toContain("TransOutRevert");
    await recover(second.client);

    const q = await second.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.branches.map((b) => b.status)).toEqual(["succeed", "succeed", "succeed", "failed", "prepared", "prepared"]);
    // The aborting status was recorded with the failure, so the actions are not called again.
    expect(count(gid, "TransOut")).toBe(1);
    expect(count(gid, "TransIn")).toBe(1);
    expect(count(gid, "Step3")).toBe(0);
    expect(count(gid, "Step3Revert")).toBe(0);
    const comp = compensations(gid);
    expect(busi.calls({ gid, op: "compensate" }).map((c) => `${c.name}:${c.outcome}`)).toEqual([
      "TransInRevert:SUCCESS", // before the crash, not recorded
      "TransInRevert:ERROR", // first cron round after the restart
      "TransInRevert:SUCCESS", // second round...
      "TransOutRevert:SUCCESS", // ...and only then step 1
    ]);
    // Reverse order: every attempt at step 2's rollback comes before step 1's compensation starts.
    expect(comp.lastIndexOf("TransInRevert")).toBeLessThan(comp.indexOf("TransOutRevert"));
  });

  it("6. many sagas: killed with a known number of calls in flight, every acknowledged saga succeeds", async () => {
    const N = 20;
    const gids = Array.from({ length: N }, (_, i) => `crash-many-${String(i).padStart(2, "0")}`);
    // 5 hang in their first action, 5 in their second; the other 10 run freely.
    const hangOut = gids.slice(0, 5);
    const hangIn = gids.slice(5, 10);
    for (const gid of hangOut) busi.program({ gid, name: "TransOut" }, "HANG");
    for (const gid of hangIn) busi.program({ gid, name: "TransIn" }, "HANG");
    const body = (gid: string): Record<string, unknown> => sagaBody(gid, (n) => busi.url(n), { request_timeout: LONG_REQUEST_TIMEOUT });

    const first = await start();
    const acks = await Promise.all(gids.map((gid) => first.client.submit(body(gid))));
    for (const r of acks) expect(r.status).toBe(200);
    const hungCalls = await Promise.all([
      ...hangOut.map((gid) => busi.waitForCalls({ gid, name: "TransOut" }, 1)),
      ...hangIn.map((gid) => busi.waitForCalls({ gid, name: "TransIn" }, 1)),
    ]);
    expect(hungCalls.flat().filter((c) => c.outcome === "HANG")).toHaveLength(10);

    // A few more submits race with the kill, which fires as soon as the first of them reaches the
    // participant: whatever was acknowledged (or had a branch called) must survive.
    const racing = Array.from({ length: 5 }, (_, i) => `crash-many-race-${i}`);
    const killed = new Promise<NodeJS.Signals | number | null>((resolve) => {
      const off = busi.onCall((c) => {
        if (!racing.includes(c.gid)) return;
        off();
        resolve(first.kill());
      });
    });
    const racingAcks = racing.map((gid) =>
      first.client.submit(body(gid)).then(
        (r) => ({ gid, status: r.status }),
        () => ({ gid, status: 0 }),
      ),
    );
    expect(await killed).toBe("SIGKILL");
    const raced = await Promise.all(racingAcks);
    const reachedBusi = racing.filter((gid) => busi.calls({ gid }).length > 0);
    expect(reachedBusi.length).toBeGreaterThanOrEqual(1);

    const second = await restart(first);
    busi.releaseHung();
    // Sagas already final at the restart must not be driven again.
    const finalBefore = new Map<string, number>();
    for (const gid of [...gids, ...racing]) {
      const status = await second.client.status(gid);
      if (status === "succeed") finalBefore.set(gid, busi.calls({ gid }).length);
    }
    for (const gid of [...hangOut, ...hangIn]) expect(finalBefore.has(gid)).toBe(false);
    await recover(second.client);

    for (const gid of gids) {
      const q = await second.client.query(gid);
      expect(q.transaction?.status, gid).toBe("succeed");
      expect(q.branches.map((b) => b.status), gid).toEqual(["prepared", "succeed", "prepared", "succeed"]);
      expect(compensations(gid), gid).toEqual([]);
      expect(count(gid, "TransOut"), gid).toBeGreaterThanOrEqual(1);
      expect(count(gid, "TransIn"), gid).toBeGreaterThanOrEqual(1);
      expectForwardOrder(gid, ["TransOut", "TransIn"]);
    }
    for (const gid of hangOut) expect(busi.calls({ gid, name: "TransOut" }).map((c) => c.outcome), gid).toEqual(["HANG", "SUCCESS"]);
    for (const gid of hangIn) expect(busi.calls({ gid, name: "TransIn" }).map((c) => c.outcome), gid).toEqual(["HANG", "SUCCESS"]);
    for (const [gid, calls] of finalBefore) expect(busi.calls({ gid }).length, `${gid} re-driven after it was final`).toBe(calls);

    for (const { gid, status } of raced) {
      const stored = await second.client.status(gid);
      // Acknowledged => stored and finished; unacknowledged => absent or finished, never half-done.
      if (status === 200 || reachedBusi.includes(gid)) expect(stored, gid).toBe("succeed");
      else expect([undefined, "succeed"], gid).toContain(stored);
      if (stored !== undefined) expect(compensations(gid), gid).toEqual([]);
    }
  });
});
