import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../../test/busi/index.ts";
import { startBusi } from "../../test/busi/index.ts";
import { DtxClient, DtxError, DtxFailure, DtxOngoing, isFailure, isOngoing, Saga, newGid } from "../src/index.ts";
import type { CaptureServer, SdkEnv } from "./helpers.ts";
import { gidFor, startCaptureServer, startSdkEnv } from "./helpers.ts";

let env: SdkEnv;
let busi: Busi;

beforeAll(async () => {
  env = await startSdkEnv();
  busi = await startBusi();
});
afterAll(async () => {
  await env?.stop();
  await busi?.close();
});
beforeEach(() => busi.reset());

describe("Saga against the real coordinator", () => {
  it("runs every action in order and leaves compensations untouched", async () => {
    const gid = gidFor("saga-ok");
    await new Saga(env.http, gid, { waitResult: true })
      .add(busi.url("TransOut"), busi.url("TransOutRevert"), { amount: 30 })
      .add(busi.url("TransIn"), busi.url("TransInRevert"), "raw text payload")
      .submit();
    const q = await env.http.query(gid);
    expect(q.transaction?.status).toBe("succeed");
    expect(q.branches.map((b) => `${b.branch_id}:${b.op}:${b.status}`)).toEqual([
      "01:compensate:prepared", "01:action:succeed", "02:compensate:prepared", "02:action:succeed",
    ]);
    const calls = busi.calls({ gid });
    expect(calls.map((c) => `${c.name}:${c.op}:${c.branchId}:${c.transType}`)).toEqual(["TransOut:action:01:saga", "TransIn:action:02:saga"]);
    expect(calls[0]?.body).toBe('{"amount":30}');
    expect(calls[1]?.body).toBe("raw text payload");
  });

  it("compensates in reverse order when an action answers FAILURE, and submit with waitResult throws DtxFailure", async () => {
    const gid = gidFor("saga-fail");
    busi.program({ gid, name: "Step3" }, "FAILURE");
    const saga = new Saga(env.http, gid, { waitResult: true })
      .add(busi.url("TransOut"), busi.url("TransOutRevert"), { step: 0 })
      .add(busi.url("TransIn"), busi.url("TransInRevert"), { step: 1 })
      .add(busi.url("Step3"), busi.url("Step3Revert"), { step: 2 });
    const err = await saga.submit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxFailure);
    expect((err as DtxError).code).toBe("FAILURE");
    expect((err as DtxError).httpStatus).toBe(409);
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["TransOut", "TransIn", "Step3", "Step3Revert", "TransInRevert", "TransOutRevert"]);
    const q = await env.http.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(await env.dtx.client.branchStatuses(gid)).toEqual(["succeed", "succeed", "succeed", "succeed", "succeed", "failed"]);
  });

  it("with waitResult, a saga still being retried throws DtxOngoing (HTTP 425), not DtxFailure, and succeeds later (D11)", async () => {
    const gid = gidFor("saga-wait-ongoing");
    busi.program({ gid, name: "TransIn" }, "ERROR");
    const saga = new Saga(env.http, gid, { waitResult: true }).add(busi.url("TransOut"), busi.url("TransOutRevert"), {}).add(busi.url("TransIn"), busi.url("TransInRevert"), {});
    const err = await saga.submit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxOngoing);
    expect(err).not.toBeInstanceOf(DtxFailure);
    expect(err).toMatchObject({ code: "ONGOING", httpStatus: 425, serverCode: "ONGOING", retryable: true });
    expect(isFailure(err)).toBe(false);
    expect(isOngoing(err)).toBe(true);
    expect((await env.http.query(gid)).transaction?.status).toBe("submitted");
    await env.dtx.client.cron(60_000);
    expect((await env.http.query(gid)).transaction?.status).toBe("succeed");
    expect(busi.calls({ gid, op: "compensate" })).toHaveLength(0);
  });

  it("without waitResult, submit returns at once and the cron finishes the saga after an error", async () => {
    const gid = gidFor("saga-async");
    busi.program({ gid, name: "TransIn" }, "ERROR");
    await new Saga(env.http, gid).add(busi.url("TransOut"), busi.url("TransOutRevert"), {}).add(busi.url("TransIn"), busi.url("TransInRevert"), {}).submit();
    await busi.waitForCalls({ gid, name: "TransIn" }, 1);
    await env.dtx.client.settle();
    expect(await env.dtx.client.status(gid)).toBe("submitted");
    await env.dtx.client.cron(60_000);
    expect(await env.dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(2);
  });

  it("concurrent with branch orders: a step waits for its prerequisites, and compensation follows the dependencies back", async () => {
    const gid = gidFor("saga-conc");
    busi.program({ gid, name: "Step3" }, "FAILURE");
    const saga = new Saga(env.http, gid, { waitResult: true })
      .add(busi.url("TransOut"), busi.url("TransOutRevert"), {})
      .add(busi.url("TransIn"), busi.url("TransInRevert"), {})
      .add(busi.url("Step3"), busi.url("Step3Revert"), {})
      .addBranchOrder(2, [0, 1])
      .enableConcurrent();
    await expect(saga.submit()).rejects.toMatchObject({ code: "FAILURE" });
    const names = busi.calls({ gid }).map((c) => c.name);
    expect(names.indexOf("Step3")).toBeGreaterThan(Math.max(names.indexOf("TransOut"), names.indexOf("TransIn")));
    expect(names.indexOf("Step3Revert")).toBeLessThan(Math.min(names.indexOf("TransOutRevert"), names.indexOf("TransInRevert")));
    const q = await env.http.query(gid);
    expect(q.transaction?.custom_data).toBe('{"concurrent":true,"orders":{"2":[0,1]}}');
    expect(q.transaction?.status).toBe("failed");
  });

  it("sends the options: branch headers reach the participants, timeouts and retry settings are stored", async () => {
    const gid = gidFor("saga-opts");
    await new Saga(env.http, gid)
      .setOptions({ waitResult: true, branchHeaders: { "x-tenant": "t1" }, retryInterval: 7, timeoutToFail: 60, requestTimeout: 2, retryLimit: 3 })
      .add(busi.url("TransOut"), busi.url("TransOutRevert"), {})
      .submit();
    expect(busi.calls({ gid })[0]?.headers["x-tenant"]).toBe("t1");
    const q = await env.http.query(gid);
    const options = JSON.parse(String(q.transaction?.options)) as Record<string, unknown>;
    expect(options).toMatchObject({ timeout_to_fail: 60, request_timeout: 2, retry_interval: 7, branch_headers: { "x-tenant": "t1" }, retry_limit: 3 });
  });

  it("retryLimit rolls a saga back when an action keeps erroring", async () => {
    const gid = gidFor("saga-retry-limit");
    busi.programAlways({ gid, name: "TransIn" }, "ERROR");
    const saga = new Saga(env.http, gid, { waitResult: true, retryLimit: 2 })
      .add(busi.url("TransOut"), busi.url("TransOutRevert"), {})
      .add(busi.url("TransIn"), busi.url("TransInRevert"), {});
    await expect(saga.submit()).rejects.toBeInstanceOf(DtxFailure);
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(3);
    const q = await env.http.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toContain("RetryLimit");
  });

  it("reports a request the coordinator refuses as INVALID_ARGUMENT with the coordinator's code", async () => {
    const err = await new Saga(env.http, gidFor("saga-bad")).add("not a url", "", {}).submit().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxError);
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT", serverCode: "INVALID_URL", httpStatus: 400, retryable: false });
  });

  it("checks branch orders before sending anything", async () => {
    const saga = new Saga(env.http, gidFor("saga-orders")).add(busi.url("TransOut"), "", {}).addBranchOrder(1, [0]).enableConcurrent();
    await expect(saga.submit()).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("a second submit of a finished saga is FAILURE", async () => {
    const gid = gidFor("saga-twice");
    const saga = new Saga(env.http, gid, { waitResult: true }).add(busi.url("TransOut"), busi.url("TransOutRevert"), {});
    await saga.submit();
    await expect(saga.submit()).rejects.toMatchObject({ code: "FAILURE" });
  });

  it("generates a gid when none is given, and asks the coordinator for one with client.newGid()", async () => {
    const saga = new Saga(env.http).add(busi.url("TransOut"), busi.url("TransOutRevert"), {}).setOptions({ waitResult: true });
    expect(saga.gid).toMatch(/^[2-9A-HJ-NP-Za-km-z]{22}$/);
    await saga.submit();
    expect(await env.http.query(saga.gid)).toMatchObject({ transaction: { status: "succeed" } });
    expect(await env.http.newGid()).toMatch(/^\S{10,}$/);
    expect(newGid()).not.toBe(newGid());
  });

  it("maps an unreachable coordinator to UNAVAILABLE and a slow one to TIMEOUT", async () => {
    const down = new DtxClient({ server: "http://127.0.0.1:1/api/dtmsvr" });
    await expect(new Saga(down).add(busi.url("TransOut"), "", {}).submit()).rejects.toMatchObject({ code: "UNAVAILABLE", retryable: true });
    const slow = await startCaptureServer();
    slow.answer = () => new Promise(() => undefined);
    const hang = new DtxClient({ server: slow.url, timeoutMs: 200 });
    await expect(hang.newGid()).rejects.toMatchObject({ code: "TIMEOUT", retryable: true });
    await slow.close();
  });
});

describe("Saga wire format (what dtm's Go SDK sends)", () => {
  let capture: CaptureServer;
  beforeAll(async () => {
    capture = await startCaptureServer();
  });
  afterAll(async () => {
    await capture?.close();
  });

  it("a plain saga is dtm's TransBase JSON", async () => {
    capture.requests.length = 0;
    await new Saga(new DtxClient({ server: capture.url }), "g1").add("http://h/TransOut", "http://h/TransOutRevert", { amount: 30 }).add("http://h/TransIn", "http://h/TransInRevert", { amount: 30 }).submit();
    expect(capture.requests[0]?.path).toBe("/api/dtmsvr/submit");
    expect(capture.requests[0]?.body).toBe(
      '{"gid":"g1","trans_type":"saga","steps":[{"action":"http://h/TransOut","compensate":"http://h/TransOutRevert"},{"action":"http://h/TransIn","compensate":"http://h/TransInRevert"}],"payloads":["{\\"amount\\":30}","{\\"amount\\":30}"],"protocol":"","concurrent":false}',
    );
  });

  it("a concurrent saga carries custom_data with orders and concurrent, plus the options", async () => {
    capture.requests.length = 0;
    await new Saga(new DtxClient({ server: capture.url }), "g2", { waitResult: true, retryInterval: 10, branchHeaders: { a: "b" } })
      .add("http://h/A", "http://h/AR", "x")
      .add("http://h/B", "http://h/BR", "y")
      .addBranchOrder(1, [0])
      .enableConcurrent()
      .submit();
    expect(JSON.parse(capture.requests[0]?.body ?? "")).toEqual({
      gid: "g2",
      trans_type: "saga",
      custom_data: '{"concurrent":true,"orders":{"1":[0]}}',
      steps: [{ action: "http://h/A", compensate: "http://h/AR" }, { action: "http://h/B", compensate: "http://h/BR" }],
      payloads: ["x", "y"],
      protocol: "",
      wait_result: true,
      retry_interval: 10,
      branch_headers: { a: "b" },
      concurrent: true,
    });
  });

  it("treats a 200 whose body says FAILURE as FAILURE (dtm's TransCallDtmExt rule)", async () => {
    capture.answer = () => ({ status: 200, body: '{"dtm_result":"FAILURE"}' });
    await expect(new Saga(new DtxClient({ server: capture.url }), "g3").add("http://h/A", "", {}).submit()).rejects.toBeInstanceOf(DtxFailure);
    capture.answer = () => ({ status: 500, body: '{"message":"boom"}' });
    await expect(new Saga(new DtxClient({ server: capture.url }), "g4").add("http://h/A", "", {}).submit()).rejects.toMatchObject({ code: "HTTP_ERROR", httpStatus: 500 });
    capture.answer = () => ({ status: 200, body: '{"dtm_result":"SUCCESS"}' });
  });
});
