import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

let dtx: TestCoordinator;
let busi: Busi;
let hook: Busi;

beforeAll(async () => {
  busi = await startBusi();
  hook = await startBusi();
  dtx = await startCoordinator();
});
afterAll(async () => {
  await dtx?.stop();
  await busi?.close();
  await hook?.close();
});
beforeEach(() => busi.reset());

const post = (path: string, body: unknown) => dtx.client.call("POST", `/api/dtmsvr/${path}`, body);

/** Registers n TCC branches and calls their Try as the application (AP) does. */
async function tccWithTries(gid: string, n: number, failTry?: number): Promise<boolean> {
  expect((await post("prepare", { gid, trans_type: "tcc" })).status).toBe(200);
  for (let i = 1; i <= n; i++) {
    const branchId = String(i).padStart(2, "0");
    const reg = await post("registerBranch", {
      gid, trans_type: "tcc", branch_id: branchId, data: `{"amount":${i}}`,
      confirm: busi.url(`Confirm${i}`), cancel: busi.url(`Cancel${i}`),
    });
    expect(reg.status).toBe(200);
    if (i === failTry) return false; // the Try failed: the AP aborts
  }
  return true;
}

describe("TCC", () => {
  it("submit confirms every branch in reverse registration order", async () => {
    const gid = "tcc-success";
    await tccWithTries(gid, 3);
    const r = await post("submit", { gid, trans_type: "tcc", wait_result: true });
    expect(r.status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.op}:${c.branchId}`)).toEqual(["Confirm3:confirm:03", "Confirm2:confirm:02", "Confirm1:confirm:01"]);
    expect(busi.calls({ gid })[0]?.body).toBe('{"amount":3}');
    expect(await dtx.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed", "prepared", "succeed"]);
  });

  it("a failed Try aborts: every registered branch is cancelled, including the one whose Try failed", async () => {
    const gid = "tcc-try-fails";
    await tccWithTries(gid, 3, 2);
    const r = await post("abort", { gid, trans_type: "tcc", rollback_reason: "try of 02 failed", wait_result: true });
    expect(r.status).toBe(200);
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toBe("try of 02 failed");
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["Cancel2", "Cancel1"]);
  });

  it("retries a Confirm that answers ONGOING, 500 or even FAILURE until it succeeds", async () => {
    const gid = "tcc-confirm-retry";
    await tccWithTries(gid, 2);
    busi.program({ gid, name: "Confirm1" }, "ONGOING", "ERROR", "FAILURE");
    const r = await post("submit", { gid, trans_type: "tcc", wait_result: true });
    expect(r.status).toBe(425);
    for (let i = 0; i < 3; i++) await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid, name: "Confirm2" })).toHaveLength(1);
    expect(busi.calls({ gid, name: "Confirm1" })).toHaveLength(4);
  });

  it("a prepared TCC whose AP went away is cancelled after its timeout", async () => {
    const gid = "tcc-timeout";
    await tccWithTries(gid, 2);
    await dtx.client.cron(3000);
    expect(await dtx.client.status(gid)).toBe("prepared");
    await dtx.client.cron(3000);
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toMatch(/^Timeout after \d+ seconds$/);
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["Cancel2", "Cancel1"]);
  });

  it("registerBranch: identical repeat is idempotent, a conflicting one 409, unknown or finished gid 409 TRANS_NOT_PREPARED", async () => {
    const gid = "tcc-register";
    await post("prepare", { gid, trans_type: "tcc" });
    const body = { gid, trans_type: "tcc", branch_id: "01", data: "{}", confirm: busi.url("C"), cancel: busi.url("X") };
    expect((await post("registerBranch", body)).status).toBe(200);
    expect((await post("registerTccBranch", body)).status).toBe(200);
    const conflict = await post("registerBranch", { ...body, confirm: busi.url("Other") });
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ code: "BRANCH_CONFLICT" });
    expect((await dtx.client.query(gid)).branches).toHaveLength(2);
    expect(conflict.body).toMatchObject({ dtm_result: "FAILURE" });
    // dtm answers 409 FAILURE here, which its TCC client turns into an abort; never a 404.
    const unknown = await post("registerBranch", { ...body, gid: "tcc-nobody" });
    expect(unknown.status).toBe(409);
    expect(unknown.body).toMatchObject({ dtm_result: "FAILURE", code: "TRANS_NOT_PREPARED" });
    expect(unknown.text).toContain("no trans with gid: tcc-nobody status: prepared found");
    expect(await dtx.client.status("tcc-nobody")).toBeUndefined();
    expect((await post("submit", { gid, trans_type: "tcc", wait_result: true })).status).toBe(200);
    const late = await post("registerBranch", { ...body, branch_id: "02" });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ dtm_result: "FAILURE", code: "TRANS_NOT_PREPARED" });
    expect((await dtx.client.query(gid)).branches).toHaveLength(2);
    const badOp = await post("registerBranch", { ...body, branch_id: "03", confirm: "nope" });
    expect(badOp.status).toBe(400);
  });

  it("registerBranch on a tcc that is submitted or aborting but not yet finished is 409 TRANS_NOT_PREPARED too", async () => {
    for (const [gid, route] of [["tcc-reg-submitted", "submit"], ["tcc-reg-aborting", "abort"]] as const) {
      await tccWithTries(gid, 1);
      busi.program({ gid, name: route === "submit" ? "Confirm1" : "Cancel1" }, "ERROR");
      expect((await post(route, { gid, trans_type: "tcc", wait_result: true })).status, gid).toBe(425);
      expect(await dtx.client.status(gid)).toBe(route === "submit" ? "submitted" : "aborting");
      const r = await post("registerBranch", { gid, trans_type: "tcc", branch_id: "09", data: "{}", confirm: busi.url("C"), cancel: busi.url("X") });
      expect(r.status, gid).toBe(409);
      expect(r.body, gid).toMatchObject({ dtm_result: "FAILURE", code: "TRANS_NOT_PREPARED" });
      expect((await dtx.client.query(gid)).branches, gid).toHaveLength(2);
    }
  });

  it("D11: a wait_result abort whose Cancel errors answers 425 while aborting; the rollback then finishes", async () => {
    const gid = "tcc-abort-retry";
    await tccWithTries(gid, 2);
    busi.program({ gid, name: "Cancel1" }, "ERROR");
    const r = await post("abort", { gid, trans_type: "tcc", wait_result: true });
    expect(r.status).toBe(425);
    expect(r.body).toMatchObject({ dtm_result: "ONGOING", code: "ONGOING" });
    expect(await dtx.client.status(gid)).toBe("aborting");
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("failed");
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["Cancel2", "Cancel1", "Cancel1"]);
  });

  it("abort of a saga, or of a submitted tcc, is 409", async () => {
    const gid = "tcc-abort-submitted";
    await tccWithTries(gid, 1);
    await post("submit", { gid, trans_type: "tcc", wait_result: true });
    expect((await post("abort", { gid, trans_type: "tcc" })).status).toBe(409);
    expect((await post("abort", { gid: "tcc-unknown", trans_type: "tcc" })).status).toBe(404);
  });
});

describe("XA", () => {
  async function xaWithBranches(gid: string, n: number): Promise<void> {
    expect((await post("prepare", { gid, trans_type: "xa" })).status).toBe(200);
    for (let i = 1; i <= n; i++) {
      const r = await post("registerBranch", { gid, trans_type: "xa", branch_id: String(i).padStart(2, "0"), url: busi.url(`Xa${i}`) });
      expect(r.status).toBe(200);
    }
  }

  it("submit commits every branch in order with POST", async () => {
    const gid = "xa-commit";
    await xaWithBranches(gid, 2);
    expect((await post("submit", { gid, trans_type: "xa", wait_result: true })).status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("succeed");
    const calls = busi.calls({ gid });
    expect(calls.map((c) => `${c.name}:${c.op}`)).toEqual(["Xa1:commit", "Xa2:commit"]);
    for (const c of calls) expect(c.method).toBe("POST");
  });

  it("abort rolls every branch back", async () => {
    const gid = "xa-rollback";
    await xaWithBranches(gid, 2);
    expect((await post("abort", { gid, trans_type: "xa", wait_result: true })).status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("failed");
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.op}`)).toEqual(["Xa1:rollback", "Xa2:rollback"]);
    expect(await dtx.client.branchStatuses(gid)).toEqual(["succeed", "prepared", "succeed", "prepared"]);
  });

  it("retries a commit error with backoff", async () => {
    const gid = "xa-commit-retry";
    await xaWithBranches(gid, 2);
    busi.program({ gid, name: "Xa2" }, "ERROR");
    expect((await post("submit", { gid, trans_type: "xa", wait_result: true })).status).toBe(425);
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid, name: "Xa1" })).toHaveLength(1);
    expect(busi.calls({ gid, name: "Xa2" })).toHaveLength(2);
  });
});

describe("operations on every type", () => {
  it("forceStop fails an unfinished trans; a finished one is 409", async () => {
    const gid = "ops-force-stop";
    await tccWithTries(gid, 1);
    expect((await post("forceStop", { gid })).status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("failed");
    expect((await post("forceStop", { gid })).status).toBe(409);
    await dtx.client.cron(60_000);
    expect(busi.calls({ gid })).toHaveLength(0);
  });

  it("resetNextCronTime makes a backed-off trans due now; resetCronTime pulls forward far-future ones", async () => {
    const gid = "ops-reset";
    await tccWithTries(gid, 1);
    busi.program({ gid, name: "Confirm1" }, "ERROR", "ERROR");
    await post("submit", { gid, trans_type: "tcc", wait_result: true });
    expect(await dtx.client.cron(0)).toBe(0);
    expect((await post("resetNextCronTime", { gid })).status).toBe(200);
    expect(await dtx.client.cron(0)).toBe(1);
    expect(busi.calls({ gid, name: "Confirm1" })).toHaveLength(2);
    const r = await dtx.client.call<{ has_remaining: boolean; succeed_count: number }>("GET", "/api/dtmsvr/resetCronTime?timeout=0&limit=10");
    expect(r.body).toMatchObject({ has_remaining: false, succeed_count: 1 });
    await dtx.client.cron(0);
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("posts to the alert webhook once a trans has backed off alertRetryLimit times", async () => {
    const alerting = await startCoordinator({ alertWebhook: hook.url("alert"), alertRetryLimit: 2 });
    try {
      const gid = "ops-alert";
      busi.programAlways({ gid, name: "Bad" }, "ERROR");
      await alerting.client.submit({ gid, trans_type: "saga", steps: [{ action: busi.url("Bad"), compensate: "" }], payloads: ["{}"], wait_result: true });
      await alerting.client.cron(60_000);
      expect(hook.calls({ name: "alert" })).toHaveLength(0);
      await alerting.client.cron(60_000);
      const [alert] = await hook.waitForCalls({ name: "alert" }, 1);
      expect(JSON.parse(alert!.body)).toMatchObject({ gid, branch: busi.url("Bad"), retry_count: 2, status: "submitted" });
    } finally {
      await alerting.stop();
    }
  });
});
