/**
 * Workflow end to end (docs/protocol.md#workflow): the coordinator only stores what the application's workflow
 * SDK records (prepareWorkflow, registerBranch, submit with req_extra) and, while a workflow stays
 * prepared, calls the application back at its query_prepared URL so it re-runs the workflow. The
 * SDK side is played by test/helpers/workflow-client.ts, a scripted double of dtm's Go client.
 *
 * No sleeps: time moves through the test-control API (`cron(ms)`), waits are on events.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi, BusiCall } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import type { ChildCoordinator, TestCoordinator } from "../helpers/coordinator.ts";
import { spawnCoordinator, startCoordinator } from "../helpers/coordinator.ts";
import type { PrepareWorkflowReply, WorkflowContext, WorkflowFunction } from "../helpers/workflow-client.ts";
import { WorkflowClient } from "../helpers/workflow-client.ts";

let dtx: TestCoordinator;
let busi: Busi;
let wfc: WorkflowClient;

beforeAll(async () => {
  busi = await startBusi();
  dtx = await startCoordinator();
  wfc = new WorkflowClient(dtx.url, busi.url("WfResume"));
});
afterAll(async () => {
  await dtx?.stop();
  await busi?.close();
});
beforeEach(() => busi.reset());

const post = (path: string, body: unknown) => dtx.client.call("POST", `/api/dtmsvr/${path}`, body);
const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
const calls = (gid: string): string[] => busi.calls({ gid }).map((c) => `${c.name}:${c.branchId}:${c.op}`);
const SUCCESS_BODY = '{"dtm_result":"SUCCESS"}';

/**
 * Branch 01 is saga-like (an action with a rollback), branch 02 TCC-like (try, then confirm on
 * success or cancel on failure, recorded under those ops), branch 03 another saga-like action.
 */
function mixedWorkflow(body: string): WorkflowFunction {
  return async (wf: WorkflowContext) => {
    wf.newBranch();
    wf.onRollback(busi.url("TransOutRevert"), body);
    await wf.branch("action", busi.url("TransOut"), body);

    wf.newBranch();
    wf.onCommit(busi.url("TccConfirm"), body, "confirm");
    wf.onRollback(busi.url("TccCancel"), body, "cancel");
    await wf.branch("try", busi.url("TccTry"), body);

    wf.newBranch();
    wf.onRollback(busi.url("TransInRevert"), body);
    await wf.branch("action", busi.url("TransIn"), body);
    return `done:${wf.data}`;
  };
}

describe("workflow: prepareWorkflow, registerBranch, submit", () => {
  it("prepareWorkflow creates the workflow, then returns it with its stored progress", async () => {
    const gid = "wf-prepare-shape";
    const custom = JSON.stringify({ name: "wf-shape", data: b64("the input") });
    const body = { gid, trans_type: "workflow", protocol: "http", query_prepared: busi.url("WfResume"), custom_data: custom };
    const first = await post("prepareWorkflow", body);
    expect(first.status).toBe(200);
    const created = first.body as unknown as PrepareWorkflowReply;
    expect(Object.keys(created).sort()).toEqual(["progresses", "transaction"]);
    expect(created.progresses).toEqual([]);
    expect(created.transaction).toMatchObject({ gid, trans_type: "workflow", status: "prepared", protocol: "http", query_prepared: busi.url("WfResume"), custom_data: custom });
    expect(busi.calls({ gid })).toHaveLength(0);

    const rec = (branchId: string, op: string, status: string, data: string) =>
      post("registerBranch", { gid, trans_type: "workflow", branch_id: branchId, op, status, data });
    expect((await rec("01", "action", "succeed", '{"balance":70}')).status).toBe(200);
    expect((await rec("02", "action", "failed", "insufficient funds")).status).toBe(200);

    const again = await post("prepareWorkflow", body);
    expect(again.status).toBe(200);
    const stored = again.body as unknown as PrepareWorkflowReply;
    expect(Object.keys(stored).sort()).toEqual(["progresses", "transaction"]);
    expect(stored.transaction).toMatchObject({ gid, status: "prepared", custom_data: custom });
    expect(stored.transaction["id"]).toBe(created.transaction["id"]);
    expect(stored.transaction["create_time"]).toBe(created.transaction["create_time"]);
    expect(stored.progresses.map((p) => ({ branch_id: p.branch_id, op: p.op, status: p.status, bin_data: p.bin_data }))).toEqual([
      { branch_id: "01", op: "action", status: "succeed", bin_data: b64('{"balance":70}') },
      { branch_id: "02", op: "action", status: "failed", bin_data: b64("insufficient funds") },
    ]);
    // A prepare with a different body does not change what is stored.
    const other = await post("prepareWorkflow", { ...body, custom_data: JSON.stringify({ name: "other", data: null }) });
    expect((other.body as unknown as PrepareWorkflowReply).transaction.custom_data).toBe(custom);
    expect(await dtx.client.status(gid)).toBe("prepared");
  });

  it("a workflow mixing a saga-like and a TCC-like branch succeeds, then replays its stored result", async () => {
    const gid = "wf-mixed-success";
    const payload = '{"amount":30}';
    const outcome = await wfc.execute("transfer", gid, "order-7", mixedWorkflow(payload));
    expect(outcome).toEqual({ status: "succeed", result: "done:order-7" });
    expect(calls(gid)).toEqual(["TransOut:01:action", "TccTry:02:try", "TransIn:03:action", "TccConfirm:02:confirm"]);
    for (const c of busi.calls({ gid })) {
      expect(c.method).toBe("POST");
      expect(c.transType).toBe("workflow");
      expect(c.body).toBe(payload);
    }

    const q = await dtx.client.query(gid);
    expect(q.transaction).toMatchObject({ status: "succeed", trans_type: "workflow", result: b64("done:order-7") });
    expect(q.transaction?.["finish_time"]).toBeTruthy();
    expect(q.branches.map((b) => `${b.branch_id}-${b.op}:${b.status}`)).toEqual([
      "01-action:succeed", "02-try:succeed", "03-action:succeed", "02-confirm:succeed",
    ]);
    for (const b of q.branches) expect(b.bin_data).toBe(b64(SUCCESS_BODY));

    // Running it again only reads the stored outcome: no participant is called.
    expect(await wfc.execute("transfer", gid, "order-7", mixedWorkflow(payload))).toEqual({ status: "succeed", result: "done:order-7" });
    expect(busi.calls({ gid })).toHaveLength(4);
    // A finished workflow is never called back.
    await dtx.client.cron(60_000);
    expect(busi.calls({ name: "WfResume", gid })).toHaveLength(0);
  });

  it("a FAILURE rolls back the earlier branches in reverse order and submits failed", async () => {
    const gid = "wf-mixed-failure";
    busi.program({ gid, name: "TransIn" }, "FAILURE");
    const outcome = await wfc.execute("transfer", gid, "order-8", mixedWorkflow("{}"));
    const failureBody = '{"dtm_result":"FAILURE","message":"busi failure"}';
    expect(outcome).toEqual({ status: "failed", reason: failureBody });
    // The failed branch's own rollback is skipped (Go's default); TCC-like 02 is cancelled, never confirmed.
    expect(calls(gid)).toEqual(["TransOut:01:action", "TccTry:02:try", "TransIn:03:action", "TccCancel:02:cancel", "TransOutRevert:01:rollback"]);

    const q = await dtx.client.query(gid);
    expect(q.transaction).toMatchObject({ status: "failed", rollback_reason: failureBody });
    expect(q.transaction?.["rollback_time"]).toBeTruthy();
    expect(q.branches.map((b) => `${b.branch_id}-${b.op}:${b.status}`)).toEqual([
      "01-action:succeed", "02-try:succeed", "03-action:failed", "02-cancel:succeed", "01-rollback:succeed",
    ]);
    expect(q.branches.find((b) => b.op === "action" && b.branch_id === "03")?.bin_data).toBe(b64(failureBody));

    expect(await wfc.execute("transfer", gid, "order-8", mixedWorkflow("{}"))).toEqual({ status: "failed", reason: failureBody });
    expect(busi.calls({ gid })).toHaveLength(5);
  });

  it("a rollback that errors leaves the workflow prepared; the re-run replays the failure and finishes the rollback", async () => {
    const gid = "wf-rollback-error";
    busi.program({ gid, name: "TransIn" }, "FAILURE");
    busi.program({ gid, name: "TransOutRevert" }, "ERROR");
    const first = await wfc.execute("transfer", gid, "x", mixedWorkflow("{}"));
    expect(first).toMatchObject({ status: "prepared", ongoing: false });
    expect(await dtx.client.status(gid)).toBe("prepared");
    const second = await wfc.execute("transfer", gid, "x", mixedWorkflow("{}"));
    expect(second).toMatchObject({ status: "failed" });
    // Recorded steps are not called again; only the unrecorded rollback is retried.
    expect(calls(gid)).toEqual([
      "TransOut:01:action", "TccTry:02:try", "TransIn:03:action", "TccCancel:02:cancel", "TransOutRevert:01:rollback", "TransOutRevert:01:rollback",
    ]);
    expect(await dtx.client.status(gid)).toBe("failed");
  });

  it("registerBranch on a finished workflow is 409; submit with a bad req_extra.status is 400", async () => {
    const gid = "wf-finished";
    expect(await wfc.execute("one-step", gid, "", async (wf) => void (await wf.branch("action", busi.url("Only"))))).toEqual({ status: "succeed", result: "" });
    const late = await post("registerBranch", { gid, trans_type: "workflow", branch_id: "02", op: "action", status: "succeed", data: "x" });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ dtm_result: "FAILURE", code: "TRANS_NOT_PREPARED" });
    expect(late.text).toContain("FAILURE");
    expect((await dtx.client.query(gid)).branches).toHaveLength(1);
    // The same final status again is accepted; the other one is refused.
    expect((await post("submit", { gid, trans_type: "workflow", req_extra: { status: "succeed" } })).status).toBe(200);
    const flip = await post("submit", { gid, trans_type: "workflow", req_extra: { status: "failed", rollback_reason: "late" } });
    expect(flip.status).toBe(409);
    expect(flip.body).toMatchObject({ dtm_result: "FAILURE" });
    expect(await dtx.client.status(gid)).toBe("succeed");

    const open = "wf-bad-submit";
    await wfc.prepare("w", open, "");
    for (const reqExtra of [{ status: "submitted" }, { status: "" }, {}, { status: "SUCCEED" }]) {
      const r = await post("submit", { gid: open, trans_type: "workflow", req_extra: reqExtra });
      expect(r.status, JSON.stringify(reqExtra)).toBe(400);
      expect(r.body, JSON.stringify(reqExtra)).toMatchObject({ code: "INVALID_REQUEST" });
    }
    const wrongType = await post("submit", { gid: open, trans_type: "workflow", req_extra: { status: true } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body).toMatchObject({ code: "INVALID_REQUEST" });
    expect(await dtx.client.status(open)).toBe("prepared");
  });

  it("registerBranch of a recorded (branch_id, op) is idempotent when identical, 409 when it conflicts (D4)", async () => {
    const gid = "wf-register-twice";
    await wfc.prepare("w", gid, "");
    const rec = { gid, trans_type: "workflow", branch_id: "01", op: "action", status: "succeed", data: "result-1" };
    expect((await post("registerBranch", rec)).status).toBe(200);
    expect((await post("registerBranch", rec)).status).toBe(200);
    const otherData = await post("registerBranch", { ...rec, data: "result-2" });
    expect(otherData.status).toBe(409);
    expect(otherData.body).toMatchObject({ code: "BRANCH_CONFLICT" });
    // A repeat that records a different status for the same progress is a conflict (docs/deviations.md D4): accepting
    // it silently would make a client that believes it recorded `failed` replay `succeed`.
    const otherStatus = await post("registerBranch", { ...rec, status: "failed" });
    expect(otherStatus.status).toBe(409);
    expect(otherStatus.body).toMatchObject({ code: "BRANCH_CONFLICT" });
    const q = await dtx.client.query(gid);
    expect(q.branches.map((b) => `${b.branch_id}-${b.op}:${b.status}`)).toEqual(["01-action:succeed"]);
  });
});

describe("workflow: the cron resumes a prepared workflow through its callback", () => {
  it("calls query_prepared once next_cron_time passes, every retry interval while prepared, never after submit", async () => {
    const gid = "wf-cron-resume";
    const input = '{"order":42}';
    busi.program({ gid, name: "Reserve" }, "ONGOING");
    const fn: WorkflowFunction = async (wf) => {
      await wf.branch("action", busi.url("Reserve"), input);
      wf.newBranch();
      await wf.branch("action", busi.url("Ship"), input);
      return "shipped";
    };
    const first = await wfc.execute("order-flow", gid, input, fn);
    expect(first).toMatchObject({ status: "prepared", ongoing: true });
    expect((await dtx.client.query(gid)).branches).toHaveLength(0); // ONGOING is not recorded

    const resumes = (): BusiCall[] => busi.calls({ gid, name: "WfResume" });
    await dtx.client.cron(0);
    expect(resumes()).toHaveLength(0); // not due before one retry interval (1 s)
    await dtx.client.cron(1500);
    expect(resumes()).toHaveLength(1);
    const [resume] = resumes();
    expect(resume).toMatchObject({ method: "POST", body: input, gid, branchId: "00", op: "order-flow", transType: "workflow" });
    expect((await dtx.client.query(gid)).transaction?.next_cron_interval).toBe(1);

    await dtx.client.cron(500);
    expect(resumes()).toHaveLength(1); // not again before the retry interval has passed
    await dtx.client.cron(1000);
    expect(resumes()).toHaveLength(2);
    await dtx.client.cron(1500);
    expect(resumes()).toHaveLength(3);
    expect(busi.calls({ gid, name: "Reserve" })).toHaveLength(1); // the coordinator never calls branches itself

    // The application handles the callback: it re-runs the workflow (ExecuteByQS) to completion.
    const done = await wfc.executeByQS(resume!.query, resume!.body, fn);
    expect(done).toEqual({ status: "succeed", result: "shipped" });
    expect(await dtx.client.status(gid)).toBe("succeed");
    for (let i = 0; i < 3; i++) await dtx.client.cron(60_000);
    expect(resumes()).toHaveLength(3);
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["Reserve", "WfResume", "WfResume", "WfResume", "Reserve", "Ship"]);
  });

  it("a workflow without input is called back with GET and no body", async () => {
    const gid = "wf-cron-resume-empty";
    await wfc.prepare("empty-input", gid, "");
    await dtx.client.cron(1500);
    const [resume] = busi.calls({ gid, name: "WfResume" });
    expect(resume).toMatchObject({ method: "GET", body: "", op: "empty-input", branchId: "00" });
    await post("submit", { gid, trans_type: "workflow", req_extra: { status: "failed", rollback_reason: "gave up" } });
    await dtx.client.cron(60_000);
    expect(busi.calls({ gid, name: "WfResume" })).toHaveLength(1);
    expect((await dtx.client.query(gid)).transaction).toMatchObject({ status: "failed", rollback_reason: "gave up" });
  });
});

describe("workflow resumed after the coordinator is SIGKILLed mid-workflow", () => {
  /** Retries and the claim lease 30 s apart: nothing becomes due in real time (see crash-recovery.test.ts). */
  const ENV = { DTX_RETRY_INTERVAL: "30", DTX_MAX_RETRY_INTERVAL: "30" } as const;
  let dir = "";
  const children = new Set<ChildCoordinator>();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "dtx-wf-crash-"));
  });
  afterEach(async () => {
    await Promise.all([...children].map((c) => c.kill("SIGKILL")));
    children.clear();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(): Promise<ChildCoordinator> {
    const child = await spawnCoordinator(join(dir, "dtx.db"), ENV);
    children.add(child);
    return child;
  }

  it("replays the recorded branch without calling its participant again and completes", async () => {
    const gid = "wf-crash-resume";
    const input = '{"order":9}';
    const first = await start();
    let crash: (() => Promise<void>) | undefined = async () => {
      expect(await first.kill("SIGKILL")).toBe("SIGKILL");
    };
    const fn: WorkflowFunction = async (wf) => {
      wf.onRollback(busi.url("Step1Revert"), input);
      await wf.branch("action", busi.url("Step1"), input);
      // The coordinator dies after branch 01 is recorded, while the application carries on.
      const die = crash;
      crash = undefined;
      if (die) await die();
      wf.newBranch();
      await wf.branch("action", busi.url("Step2"), input);
      return "ok";
    };

    const firstRun = await new WorkflowClient(first.url, busi.url("WfResume")).execute("crashy", gid, input, fn);
    // Step2 answered, but recording it failed: the coordinator is gone.
    expect(firstRun).toMatchObject({ status: "prepared", ongoing: false });
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["Step1", "Step2"]);

    const second = await start();
    const q = await second.client.query(gid);
    expect(q.transaction?.status).toBe("prepared");
    expect(q.branches.map((b) => `${b.branch_id}-${b.op}:${b.status}`)).toEqual(["01-action:succeed"]);

    // Recovery: once its next_cron_time passes, the new coordinator calls the application back.
    await second.client.cron(60_000);
    const [resume] = await busi.waitForCalls({ gid, name: "WfResume" }, 1);
    expect(resume).toMatchObject({ method: "POST", body: input, branchId: "00", op: "crashy", transType: "workflow" });
    const resumed = await new WorkflowClient(second.url, busi.url("WfResume")).executeByQS(resume!.query, resume!.body, fn);
    expect(resumed).toEqual({ status: "succeed", result: "ok" });

    const final = await second.client.query(gid);
    expect(final.transaction).toMatchObject({ status: "succeed", result: b64("ok") });
    expect(final.branches.map((b) => `${b.branch_id}-${b.op}:${b.status}`)).toEqual(["01-action:succeed", "02-action:succeed"]);
    // Step1 was replayed from the progress; Step2 (never recorded) ran again: at least once, as documented.
    expect(busi.calls({ gid, name: "Step1" })).toHaveLength(1);
    expect(busi.calls({ gid, name: "Step2" })).toHaveLength(2);
    expect(busi.calls({ gid, name: "Step1Revert" })).toHaveLength(0);
    await second.client.cron(60_000);
    expect(busi.calls({ gid, name: "WfResume" })).toHaveLength(1);
  });
});

describe("workflow: a resume the application answers with an error is logged", () => {
  let logged: TestCoordinator;
  const lines: Record<string, unknown>[] = [];
  beforeAll(async () => {
    // The coordinator's own pino logger, writing into this array instead of stdout.
    const sink = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
    logged = await startCoordinator({}, pino({ level: "info", base: { service: "dtx" } }, sink));
  });
  afterAll(async () => {
    await logged?.stop();
  });

  it("at warn, with gid and status, and the callback URL without its credentials", async () => {
    const gid = "wf-resume-error";
    const secretUrl = busi.url("WfResume").replace("http://", "http://user:s3cret@") + "?api_key=k3y";
    busi.programAlways({ gid, name: "WfResume" }, "ERROR");
    const prepared = await logged.client.call("POST", "/api/dtmsvr/prepareWorkflow", {
      gid, trans_type: "workflow", protocol: "http", query_prepared: secretUrl, custom_data: JSON.stringify({ name: "wf-log", data: null }),
    });
    expect(prepared.status).toBe(200);
    await logged.client.cron(1500);
    await logged.client.settle();
    const warnings = lines.filter((l) => l["gid"] === gid && l["level"] === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ gid, status: "prepared", transType: "workflow", callback: busi.url("WfResume").replace(/\?.*$/, "") });
    expect(String(warnings[0]?.["error"])).toContain("500");
    const text = JSON.stringify(lines);
    expect(text).not.toContain("s3cret");
    expect(text).not.toContain("k3y");
    expect(await logged.client.status(gid)).toBe("prepared");
  });
});
