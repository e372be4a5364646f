/**
 * Crash recovery for two-phase messages and TCC (docs/protocol.md#msg and docs/protocol.md#tcc), in the style of
 * crash-recovery.test.ts: the real coordinator runs as a child process on a SQLite file, is
 * SIGKILLed (at an armed crash point, or by the test while the participant holds a call), is
 * restarted on the same file, and the cron (driven through the test-control API) must finish:
 * - a msg delivers every branch at least once and ends `succeed` (a msg never rolls back);
 * - a TCC ends `succeed` with every Confirm called at least once and no Cancel, or `failed` with
 *   every Cancel called at least once and no Confirm.
 *
 * No sleeps: every wait is on an event (a busi call, the child's exit, an HTTP response). Both
 * coordinators of a case run with a 30 s retry interval, so nothing becomes due in real time and
 * recovery is driven by `cron(60_000)` only (except where a case says otherwise).
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import type { DtxClient } from "../helpers/client.ts";
import type { ChildCoordinator } from "../helpers/coordinator.ts";
import { crashDuring, LONG_REQUEST_TIMEOUT, recover, useCrashHarness } from "../helpers/crash-harness.ts";

const harness = useCrashHarness("dtx-crash-msg-tcc");
const { start, restart } = harness;
let busi: Busi;
beforeAll(() => {
  busi = harness.busi;
});

/**
 * How far to move the clock when recovering after a crash inside a cron round: that round, run by
 * the first coordinator at clock +60 s, leaves a lease (and retry times) up to +90 s on the stored
 * trans, and the restarted coordinator's clock starts again at real time.
 */
const AFTER_CRON_CRASH = 120_000;

/** Kills the coordinator while `pending` waits on a call the participant holds; the request must fail. */
async function killDuring(child: ChildCoordinator, pending: Promise<unknown>): Promise<void> {
  const settled = pending.then(() => "answered", () => "failed");
  expect(await child.kill("SIGKILL")).toBe("SIGKILL");
  expect(await settled).toBe("failed");
}

const count = (gid: string, name: string): number => busi.calls({ gid, name }).length;
const outcomes = (gid: string, name: string): string[] => busi.calls({ gid, name }).map((c) => c.outcome);

/** Every call of `order[k]` (k > 0) comes after a successful call of `order[k-1]`. */
function expectOrder(gid: string, order: readonly string[]): void {
  const calls = busi.calls({ gid });
  for (let k = 1; k < order.length; k++) {
    for (const call of calls.filter((c) => c.name === order[k])) {
      const ok = calls.some((p) => p.name === order[k - 1] && p.outcome === "SUCCESS" && p.seq < call.seq);
      expect(ok, `${gid}: ${order[k]} #${call.seq} before ${order[k - 1]} succeeded`).toBe(true);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// MSG

const MSG_STEPS = ["Msg1", "Msg2", "Msg3"] as const;

function msgBody(gid: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    gid,
    trans_type: "msg",
    steps: MSG_STEPS.map((n) => ({ action: busi.url(n) })),
    payloads: MSG_STEPS.map((_, i) => JSON.stringify({ step: i })),
    query_prepared: busi.url("QueryPrepared"),
    ...extra,
  };
}

async function expectMsgDelivered(client: DtxClient, gid: string, maxPerBranch = 2): Promise<void> {
  const q = await client.query(gid);
  expect(q.transaction?.status, gid).toBe("succeed");
  expect(q.branches.map((b) => b.status), gid).toEqual(["succeed", "succeed", "succeed"]);
  for (const step of MSG_STEPS) {
    expect(count(gid, step), `${gid} ${step}`).toBeGreaterThanOrEqual(1);
    expect(count(gid, step), `${gid} ${step}`).toBeLessThanOrEqual(maxPerBranch);
    for (const c of busi.calls({ gid, name: step })) expect(c.body).toBe(JSON.stringify({ step: MSG_STEPS.indexOf(step) }));
  }
}

describe("msg crash recovery", () => {
  it.each([
    { point: "beforeBranchCall", hit: 2, before: ["Msg1"] },
    { point: "beforeBranchCall", hit: 3, before: ["Msg1", "Msg2"] },
    { point: "afterBranchCall", hit: 1, before: ["Msg1"] },
    { point: "afterBranchCall", hit: 3, before: ["Msg1", "Msg2", "Msg3"] },
    // The one write of a successful pass: every delivery is done, none is recorded.
    { point: "beforeStatusWrite", hit: 1, before: ["Msg1", "Msg2", "Msg3"] },
  ])("killed at $point #$hit during delivery: every branch is delivered and the msg succeeds", async ({ point, hit, before }) => {
    const gid = `msg-crash-${point}-${hit}`;
    const first = await start();
    expect((await first.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid))).status).toBe(200);
    await first.client.armCrash(point, gid, hit);
    await crashDuring(first, first.client.submit(msgBody(gid, { wait_result: true })));
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(before);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);

    await expectMsgDelivered(second.client, gid);
    expectOrder(gid, MSG_STEPS);
    expect(count(gid, "QueryPrepared")).toBe(0);
    // Finished: a later cron round delivers nothing more.
    const calls = busi.calls({ gid }).length;
    await recover(second.client);
    expect(busi.calls({ gid })).toHaveLength(calls);
  });

  it("killed while a delivery hangs: the branch is delivered again after the restart", async () => {
    const gid = "msg-crash-hang";
    busi.program({ gid, name: "Msg2" }, "HANG");
    const first = await start();
    const submitting = first.client.submit(msgBody(gid, { wait_result: true, request_timeout: LONG_REQUEST_TIMEOUT }));
    await busi.waitForCalls({ gid, name: "Msg2" }, 1);
    await killDuring(first, submitting);

    const second = await restart(first);
    busi.releaseHung();
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);

    await expectMsgDelivered(second.client, gid);
    expect(outcomes(gid, "Msg2")).toEqual(["HANG", "SUCCESS"]);
    expect(count(gid, "Msg3")).toBe(1);
    expectOrder(gid, MSG_STEPS);
  });

  it("killed while one of the concurrent deliveries hangs: every branch is delivered", async () => {
    const gid = "msg-crash-concurrent";
    busi.program({ gid, name: "Msg2" }, "HANG");
    const first = await start();
    const submitting = first.client.submit(msgBody(gid, { wait_result: true, concurrent: true, request_timeout: LONG_REQUEST_TIMEOUT }));
    await Promise.all(MSG_STEPS.map((name) => busi.waitForCalls({ gid, name }, 1)));
    await killDuring(first, submitting);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);

    await expectMsgDelivered(second.client, gid);
    expect(outcomes(gid, "Msg2")).toEqual(["HANG", "SUCCESS"]);
  });

  describe("a prepared msg whose sender went quiet", () => {
    it("is checked back by the restarted coordinator's own startup round once its check-back is due", async () => {
      const gid = "msg-crash-prepared-due";
      const first = await start();
      // Times out (and is due) 100 ms after it is prepared, long before the coordinator is back.
      expect((await first.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid, { timeout_to_fail: 0.1 }))).status).toBe(200);
      expect(await first.kill("SIGKILL")).toBe("SIGKILL");
      expect(busi.calls({ gid })).toHaveLength(0);

      // No cron() call: the cron round every coordinator runs as it starts finds the msg due.
      const second = await restart(first);
      const [check] = await busi.waitForCalls({ gid, name: "QueryPrepared" }, 1);
      expect(check).toMatchObject({ method: "GET", branchId: "00", op: "msg", transType: "msg" });
      await busi.waitForCalls({ gid, name: "Msg3" }, 1);
      await second.client.settle();
      await expectMsgDelivered(second.client, gid, 1);
      expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["QueryPrepared", ...MSG_STEPS]);
    });

    it("killed while the check-back hangs: checked back again after the restart and delivered", async () => {
      const gid = "msg-crash-checkback-hang";
      busi.program({ gid, name: "QueryPrepared" }, "HANG");
      const first = await start();
      await first.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid, { request_timeout: LONG_REQUEST_TIMEOUT }));
      const cron = first.client.cron(60_000);
      await busi.waitForCalls({ gid, name: "QueryPrepared" }, 1);
      await killDuring(first, cron);

      const second = await restart(first);
      expect(await second.client.status(gid)).toBe("prepared");
      await recover(second.client, AFTER_CRON_CRASH);

      await expectMsgDelivered(second.client, gid, 1);
      expect(outcomes(gid, "QueryPrepared")).toEqual(["HANG", "SUCCESS"]);
    });

    it("killed before the check-back's 'submitted' write: checked back again, delivered once", async () => {
      const gid = "msg-crash-checkback-write";
      const first = await start();
      await first.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid));
      await first.client.armCrash("beforeStatusWrite", gid, 1);
      await crashDuring(first, first.client.cron(60_000));
      expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["QueryPrepared"]);

      const second = await restart(first);
      expect(await second.client.status(gid)).toBe("prepared");
      await recover(second.client, AFTER_CRON_CRASH);

      await expectMsgDelivered(second.client, gid, 1);
      expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["QueryPrepared", "QueryPrepared", ...MSG_STEPS]);
    });

    it("killed before the 'failed' write of a check-back FAILURE: fails after the restart, delivering nothing", async () => {
      const gid = "msg-crash-checkback-failure";
      busi.programAlways({ gid, name: "QueryPrepared" }, "FAILURE");
      const first = await start();
      await first.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid));
      await first.client.armCrash("beforeStatusWrite", gid, 1);
      await crashDuring(first, first.client.cron(60_000));

      const second = await restart(first);
      expect(await second.client.status(gid)).toBe("prepared");
      await recover(second.client, AFTER_CRON_CRASH);

      expect(await second.client.status(gid)).toBe("failed");
      expect(await second.client.branchStatuses(gid)).toEqual(["prepared", "prepared", "prepared"]);
      expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["QueryPrepared", "QueryPrepared"]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// TCC

const CONFIRMS = ["Confirm1", "Confirm2", "Confirm3"] as const;
const CANCELS = ["Cancel1", "Cancel2", "Cancel3"] as const;

/** prepare + registerBranch x3 (the AP's Try calls are not the coordinator's business). */
async function tccPrepared(client: DtxClient, gid: string, extra: Record<string, unknown> = {}): Promise<void> {
  expect((await client.call("POST", "/api/dtmsvr/prepare", { gid, trans_type: "tcc", ...extra })).status).toBe(200);
  for (let i = 1; i <= 3; i++) {
    const r = await client.call("POST", "/api/dtmsvr/registerBranch", {
      gid, trans_type: "tcc", branch_id: `0${i}`, data: `{"n":${i}}`, confirm: busi.url(`Confirm${i}`), cancel: busi.url(`Cancel${i}`),
    });
    expect(r.status).toBe(200);
  }
}

async function expectConfirmed(client: DtxClient, gid: string): Promise<void> {
  const q = await client.query(gid);
  expect(q.transaction?.status, gid).toBe("succeed");
  expect(q.branches.map((b) => `${b.op}:${b.status}`), gid).toEqual([
    "cancel:prepared", "confirm:succeed", "cancel:prepared", "confirm:succeed", "cancel:prepared", "confirm:succeed",
  ]);
  for (const name of CONFIRMS) {
    expect(count(gid, name), `${gid} ${name}`).toBeGreaterThanOrEqual(1);
    expect(count(gid, name), `${gid} ${name}`).toBeLessThanOrEqual(2);
  }
  expect(busi.calls({ gid, op: "cancel" }), `${gid}: no cancel`).toHaveLength(0);
  expectOrder(gid, [...CONFIRMS].reverse());
}

async function expectCancelled(client: DtxClient, gid: string, reason: string | RegExp): Promise<void> {
  const q = await client.query(gid);
  expect(q.transaction?.status, gid).toBe("failed");
  if (typeof reason === "string") expect(q.transaction?.rollback_reason).toBe(reason);
  else expect(q.transaction?.rollback_reason).toMatch(reason);
  expect(q.branches.map((b) => `${b.op}:${b.status}`), gid).toEqual([
    "cancel:succeed", "confirm:prepared", "cancel:succeed", "confirm:prepared", "cancel:succeed", "confirm:prepared",
  ]);
  for (const name of CANCELS) {
    expect(count(gid, name), `${gid} ${name}`).toBeGreaterThanOrEqual(1);
    expect(count(gid, name), `${gid} ${name}`).toBeLessThanOrEqual(2);
  }
  expect(busi.calls({ gid, op: "confirm" }), `${gid}: no confirm`).toHaveLength(0);
  expectOrder(gid, [...CANCELS].reverse());
}

describe("tcc crash recovery", () => {
  it.each([
    { point: "beforeBranchCall", hit: 1, before: [] as string[] },
    { point: "beforeBranchCall", hit: 2, before: ["Confirm3"] },
    { point: "afterBranchCall", hit: 1, before: ["Confirm3"] },
    { point: "afterBranchCall", hit: 3, before: ["Confirm3", "Confirm2", "Confirm1"] },
    { point: "beforeStatusWrite", hit: 1, before: ["Confirm3", "Confirm2", "Confirm1"] },
  ])("killed at $point #$hit during confirm: confirms every branch, cancels none", async ({ point, hit, before }) => {
    const gid = `tcc-confirm-${point}-${hit}`;
    const first = await start();
    await tccPrepared(first.client, gid);
    await first.client.armCrash(point, gid, hit);
    await crashDuring(first, first.client.submit({ gid, trans_type: "tcc", wait_result: true }));
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(before);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);
    await expectConfirmed(second.client, gid);
  });

  it("killed while a confirm hangs: it is confirmed again after the restart", async () => {
    const gid = "tcc-confirm-hang";
    busi.program({ gid, name: "Confirm2" }, "HANG");
    const first = await start();
    await tccPrepared(first.client, gid, { request_timeout: LONG_REQUEST_TIMEOUT });
    const submitting = first.client.submit({ gid, trans_type: "tcc", wait_result: true });
    await busi.waitForCalls({ gid, name: "Confirm2" }, 1);
    await killDuring(first, submitting);

    const second = await restart(first);
    busi.releaseHung();
    expect(await second.client.status(gid)).toBe("submitted");
    await recover(second.client);
    await expectConfirmed(second.client, gid);
    expect(outcomes(gid, "Confirm2")).toEqual(["HANG", "SUCCESS"]);
    expect(count(gid, "Confirm1")).toBe(1);
  });

  it.each([
    { point: "beforeBranchCall", hit: 2, before: ["Cancel3"] },
    { point: "afterBranchCall", hit: 1, before: ["Cancel3"] },
    { point: "afterBranchCall", hit: 3, before: ["Cancel3", "Cancel2", "Cancel1"] },
    { point: "beforeStatusWrite", hit: 1, before: ["Cancel3", "Cancel2", "Cancel1"] },
  ])("killed at $point #$hit during cancel: cancels every branch, confirms none", async ({ point, hit, before }) => {
    const gid = `tcc-cancel-${point}-${hit}`;
    const first = await start();
    await tccPrepared(first.client, gid);
    await first.client.armCrash(point, gid, hit);
    await crashDuring(first, first.client.call("POST", "/api/dtmsvr/abort", { gid, trans_type: "tcc", rollback_reason: "try 03 failed", wait_result: true }));
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(before);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe("aborting");
    await recover(second.client);
    await expectCancelled(second.client, gid, "try 03 failed");
  });

  it("killed while a cancel hangs: it is cancelled again after the restart", async () => {
    const gid = "tcc-cancel-hang";
    busi.program({ gid, name: "Cancel2" }, "HANG");
    const first = await start();
    await tccPrepared(first.client, gid, { request_timeout: LONG_REQUEST_TIMEOUT });
    const aborting = first.client.call("POST", "/api/dtmsvr/abort", { gid, trans_type: "tcc", rollback_reason: "try failed", wait_result: true });
    await busi.waitForCalls({ gid, name: "Cancel2" }, 1);
    await killDuring(first, aborting);

    const second = await restart(first);
    busi.releaseHung();
    expect(await second.client.status(gid)).toBe("aborting");
    await recover(second.client);
    await expectCancelled(second.client, gid, "try failed");
    expect(outcomes(gid, "Cancel2")).toEqual(["HANG", "SUCCESS"]);
    expect(count(gid, "Cancel1")).toBe(1);
  });

  it.each([
    { hit: 1, stored: "prepared", before: [] as string[] }, // the 'aborting' write
    { hit: 2, stored: "aborting", before: ["Cancel3", "Cancel2", "Cancel1"] }, // the 'failed' write
  ])("a timed-out TCC killed before status write #$hit: cancelled after the restart", async ({ hit, stored, before }) => {
    const gid = `tcc-timeout-crash-${hit}`;
    const first = await start();
    await tccPrepared(first.client, gid);
    await first.client.armCrash("beforeStatusWrite", gid, hit);
    await crashDuring(first, first.client.cron(60_000));
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(before);

    const second = await restart(first);
    expect(await second.client.status(gid)).toBe(stored);
    await recover(second.client, AFTER_CRON_CRASH);
    await expectCancelled(second.client, gid, /^Timeout after \d+ seconds$/);
  });
});
