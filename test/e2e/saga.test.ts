import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

let dtx: TestCoordinator;
let busi: Busi;

beforeAll(async () => {
  busi = await startBusi();
  dtx = await startCoordinator();
});
afterAll(async () => {
  await dtx?.stop();
  await busi?.close();
});
beforeEach(() => busi.reset());

const names = (gid: string): string[] => busi.calls({ gid }).map((c) => `${c.name}:${c.op}`);

describe("saga over HTTP", () => {
  it("runs every action in order and succeeds", async () => {
    const gid = "saga-success";
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ dtm_result: "SUCCESS" });
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(await dtx.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    expect(names(gid)).toEqual(["TransOut:action", "TransIn:action"]);
    const [first] = busi.calls({ gid });
    expect(first?.method).toBe("POST");
    expect(first?.query).toMatchObject({ gid, trans_type: "saga", branch_id: "01", op: "action" });
    expect(first?.headers["content-type"]).toBe("application/json");
    expect(first?.body).toBe(JSON.stringify({ amount: 30, step: 0 }));
  });

  it("processes in the background without wait_result", async () => {
    const gid = "saga-async";
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n)));
    expect(r.status).toBe(200);
    await dtx.client.settle();
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(names(gid)).toEqual(["TransOut:action", "TransIn:action"]);
  });

  it("compensates started actions in reverse order when an action fails", async () => {
    const gid = "saga-failure";
    busi.program({ gid, name: "TransIn" }, "FAILURE");
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }));
    expect(r.status).toBe(409);
    expect(r.text).toContain("FAILURE");
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toBe("busi failure"); // the branch's own message field
    expect(await dtx.client.branchStatuses(gid)).toEqual(["succeed", "succeed", "succeed", "failed"]);
    expect(names(gid)).toEqual(["TransOut:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate"]);
  });

  it("does not compensate a step whose action never started", async () => {
    const gid = "saga-first-fails";
    busi.program({ gid, name: "TransOut" }, "FAILURE");
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }, 3));
    expect(r.status).toBe(409);
    expect(await dtx.client.branchStatuses(gid)).toEqual(["succeed", "failed", "prepared", "prepared", "prepared", "prepared"]);
    expect(names(gid)).toEqual(["TransOut:action", "TransOutRevert:compensate"]);
  });

  it("treats a legacy 200 body with FAILURE as a failure (D9 fallback)", async () => {
    const gid = "saga-legacy-failure";
    busi.program({ gid, name: "TransIn" }, "LEGACY_FAILURE");
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }));
    expect(r.status).toBe(409);
    expect(await dtx.client.status(gid)).toBe("failed");
  });

  it("runs a concurrent DAG in dependency order and compensates in reverse dependency order", async () => {
    const gid = "saga-dag";
    // step 2 waits for 0 and 1; step 3 waits for 2 and fails.
    busi.program({ gid, name: "Step4" }, "FAILURE");
    const body = sagaBody(gid, (n) => busi.url(n), {
      wait_result: true,
      concurrent: true,
      custom_data: JSON.stringify({ concurrent: true, orders: { "2": [0, 1], "3": [2] } }),
    }, 4);
    const r = await dtx.client.submit(body);
    expect(r.status).toBe(409);
    const order = names(gid);
    const at = (n: string): number => order.indexOf(n);
    expect(at("Step3:action")).toBeGreaterThan(at("TransOut:action"));
    expect(at("Step3:action")).toBeGreaterThan(at("TransIn:action"));
    expect(at("Step4:action")).toBeGreaterThan(at("Step3:action"));
    // compensation: 3 first (its own failed action), then 2, then 0 and 1 in either order
    expect(at("Step3Revert:compensate")).toBeGreaterThan(at("Step4Revert:compensate"));
    expect(at("TransOutRevert:compensate")).toBeGreaterThan(at("Step3Revert:compensate"));
    expect(at("TransInRevert:compensate")).toBeGreaterThan(at("Step3Revert:compensate"));
    expect(order).toHaveLength(8);
    expect(await dtx.client.status(gid)).toBe("failed");
  });

  it("in a concurrent saga, does not compensate a step whose prerequisite failed", async () => {
    const gid = "saga-dag-prereq-failed";
    busi.program({ gid, name: "TransOut" }, "FAILURE");
    const body = sagaBody(gid, (n) => busi.url(n), {
      wait_result: true,
      concurrent: true,
      custom_data: JSON.stringify({ concurrent: true, orders: { "1": [0] } }),
    });
    expect((await dtx.client.submit(body)).status).toBe(409);
    expect(await dtx.client.branchStatuses(gid)).toEqual(["succeed", "failed", "prepared", "prepared"]);
  });

  it("retries ONGOING at a fixed interval and errors with capped exponential backoff", async () => {
    const gid = "saga-backoff";
    busi.program({ gid, name: "TransIn" }, "ONGOING", "ERROR", "ERROR", "ERROR", "ERROR", "ERROR");
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }));
    expect(r.status).toBe(425); // still submitted, and it will succeed: not a FAILURE (docs/deviations.md D11)
    expect(r.body).toMatchObject({ dtm_result: "ONGOING", code: "ONGOING" });
    const intervals: number[] = [];
    const record = async (): Promise<void> => {
      const t = (await dtx.client.query(gid)).transaction!;
      intervals.push(t.next_cron_interval);
    };
    await record(); // after ONGOING: kept at the base interval
    for (let i = 0; i < 5; i++) {
      await dtx.client.cron(60_000);
      await record();
    }
    // base 1 s; ONGOING keeps it; each error doubles it; the cap (8 s) stops the doubling.
    expect(intervals).toEqual([1, 2, 4, 8, 8, 8]);
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(7);
    expect(busi.calls({ gid, name: "TransOut" })).toHaveLength(1);
  });

  it("D11: a participant that is down gets 425 ONGOING (not 409), and the saga succeeds once it is back", async () => {
    const gid = "saga-participant-down";
    // A real participant on a port of its own, stopped: its calls are refused at the TCP level.
    const down = await startBusi();
    const port = new URL(down.url("x")).port;
    await down.close();
    const url = (n: string): string => `http://127.0.0.1:${port}/api/busi/${n}`;
    const r = await dtx.client.submit(sagaBody(gid, url, { wait_result: true }));
    expect(r.status).toBe(425);
    expect(r.body).toMatchObject({ dtm_result: "ONGOING", code: "ONGOING" });
    expect(r.text).not.toContain("FAILURE");
    expect(await dtx.client.status(gid)).toBe("submitted");
    const back = await startBusi({ port: Number(port) });
    try {
      await dtx.client.cron(60_000);
      expect(await dtx.client.status(gid)).toBe("succeed");
      expect(back.calls({ gid }).map((c) => `${c.name}:${c.op}`)).toEqual(["TransOut:action", "TransIn:action"]);
    } finally {
      await back.close();
    }
  });

  it("D11: a saga still compensating answers 425; it answers 409 only once it has ended failed", async () => {
    const gid = "saga-compensating";
    busi.program({ gid, name: "TransIn" }, "FAILURE");
    busi.program({ gid, name: "TransOutRevert" }, "ERROR");
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }));
    expect(r.status).toBe(425);
    expect(await dtx.client.status(gid)).toBe("aborting");
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("failed");
    expect(names(gid)).toEqual(["TransOut:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate", "TransOutRevert:compensate"]);
  });

  it("D11: when another writer ends the saga during a wait_result pass, the answer is what the store says (forceStop: 409)", async () => {
    const gid = "saga-wait-lost-race";
    busi.program({ gid, name: "TransOut" }, "HANG");
    const submitting = dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true, request_timeout: 30 }));
    await busi.waitForCalls({ gid, name: "TransOut" }, 1);
    expect((await dtx.client.call("POST", "/api/dtmsvr/forceStop", { gid })).status).toBe(200);
    busi.releaseHung();
    const r = await submitting;
    // The pass's own view is still "submitted"; the truth is "failed".
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ dtm_result: "FAILURE", code: "FAILURE" });
    expect(await dtx.client.status(gid)).toBe("failed");
  });

  it("schedules the retry at now + interval plus at most 10% jitter", async () => {
    const gid = "saga-jitter";
    busi.program({ gid, name: "TransOut" }, "ERROR");
    const before = Date.now();
    await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }));
    const after = Date.now();
    const t = (await dtx.client.query(gid)).transaction!;
    const offset = await dtx.client.advance(0) - Date.now();
    const due = Date.parse(t.next_cron_time) - offset;
    expect(t.next_cron_interval).toBe(2);
    expect(due).toBeGreaterThanOrEqual(before + 2000 - 5);
    expect(due).toBeLessThanOrEqual(after + 2200 + 5);
  });

  it("is not retried before its next_cron_time", async () => {
    const gid = "saga-not-due";
    busi.program({ gid, name: "TransOut" }, "ERROR");
    await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }));
    await dtx.client.cron(500);
    expect(busi.calls({ gid, name: "TransOut" })).toHaveLength(1);
    await dtx.client.cron(2500);
    expect(busi.calls({ gid, name: "TransOut" })).toHaveLength(2);
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("rolls back on timeout_to_fail while an action stays ONGOING", async () => {
    const gid = "saga-timeout";
    busi.programAlways({ gid, name: "TransOut" }, "ONGOING");
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true, timeout_to_fail: 3 }));
    expect(r.status).toBe(425);
    expect(await dtx.client.status(gid)).toBe("submitted");
    await dtx.client.cron(3500);
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toMatch(/^Timeout after \d+ seconds$/);
    // the ONGOING action may have run, so its compensation runs; step 2 never started.
    expect(q.branches.map((b) => b.status)).toEqual(["succeed", "prepared", "prepared", "prepared"]);
    expect(names(gid).filter((n) => n.endsWith("compensate"))).toEqual(["TransOutRevert:compensate"]);
  });

  it("aborts after retry_limit immediate retries", async () => {
    const gid = "saga-retry-limit";
    busi.programAlways({ gid, name: "TransIn" }, "ERROR");
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true, retry_limit: 2 }));
    expect(r.status).toBe(409);
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toBe("RetryCount is greater than RetryLimit, RetryLimit: 2");
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(3);
    expect(names(gid).slice(-2)).toEqual(["TransInRevert:compensate", "TransOutRevert:compensate"]);
  });

  it("sends branch_headers on every call, including cron retries", async () => {
    const gid = "saga-headers";
    busi.program({ gid, name: "TransIn" }, "ERROR");
    await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true, branch_headers: { "x-tenant": "acme" } }));
    await dtx.client.cron(60_000);
    const calls = busi.calls({ gid });
    expect(calls).toHaveLength(3);
    for (const c of calls) expect(c.headers["x-tenant"]).toBe("acme");
  });

  it("applies request_timeout to a hanging participant and retries", async () => {
    const gid = "saga-hang";
    busi.program({ gid, name: "TransOut" }, "HANG");
    const r = await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true, request_timeout: 0.2 }));
    expect(r.status).toBe(425);
    expect(await dtx.client.status(gid)).toBe("submitted");
    busi.releaseHung();
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("a repeated submit continues from the stored branches (D2), and 409s once finished", async () => {
    const gid = "saga-dup";
    busi.program({ gid, name: "TransIn" }, "ERROR");
    expect((await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }))).status).toBe(425);
    // The repeat names different URLs: they are ignored, the stored branches run (once the
    // failed pass's backoff has run out; before, the repeat leaves the saga to the cron).
    const repeat = sagaBody(gid, (n) => busi.url(`Other${n}`), { wait_result: true });
    await dtx.client.advance(60_000);
    const r = await dtx.client.submit(repeat);
    expect(r.status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid }).every((c) => !c.name.startsWith("Other"))).toBe(true);
    const again = await dtx.client.submit(repeat);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ dtm_result: "FAILURE" });
    expect(again.text).toContain("current status 'succeed', cannot sumbmit");
  });

  it("calls an empty-URL branch as a no-op success", async () => {
    const gid = "saga-empty-url";
    const r = await dtx.client.submit({ gid, trans_type: "saga", steps: [{ action: "", compensate: "" }], payloads: ["{}"], wait_result: true });
    expect(r.status).toBe(200);
    expect(await dtx.client.branchStatuses(gid)).toEqual(["prepared", "succeed"]);
  });
});
