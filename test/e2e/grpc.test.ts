/**
 * dtm's gRPC API (`dtmgimp.Dtm`, docs/protocol.md#grpc-api) and gRPC branch calls (docs/protocol.md#grpc-branch-calls) end to end: a real
 * @grpc/grpc-js client loaded from proto/dtmgimp.proto talks to an in-process coordinator, whose
 * branches are served by a real gRPC participant (test/busi/grpc-busi.ts). No sleeps: waits are on
 * calls, answers and cron rounds.
 */
import { randomBytes } from "node:crypto";
import { createServer as createNetServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { ServiceClientConstructor } from "@grpc/grpc-js";
import { credentials, loadPackageDefinition, status } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadWorkflowProto, PROTO_LOADER_OPTIONS } from "../../server/src/api/grpc/proto.ts";
import type { DtmGidReply, DtmProgressesReply } from "../../server/src/api/grpc/proto.ts";
import { GrpcInvoker } from "../../server/src/driver/grpc-invoker.ts";
import type { BranchCall } from "../../server/src/driver/invoker.ts";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import type { GrpcBusi, GrpcResult } from "../busi/grpc-busi.ts";
import { DtmGrpcClient, startGrpcBusi } from "../busi/grpc-busi.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

let dtx: TestCoordinator;
let gbusi: GrpcBusi;
let busi: Busi;
let dtm: DtmGrpcClient;

beforeAll(async () => {
  [gbusi, busi, dtx] = await Promise.all([startGrpcBusi(), startBusi(), startCoordinator()]);
  dtm = new DtmGrpcClient(`127.0.0.1:${dtx.grpcPort}`);
});
afterAll(async () => {
  dtm?.close();
  await dtx?.stop();
  await gbusi?.close();
  await busi?.close();
});
beforeEach(() => {
  gbusi.reset();
  busi.reset();
});

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** A DtmRequest for a saga whose steps are `busi.Busi` methods of `target` (a GrpcBusi by default). */
function sagaRequest(gid: string, opts: { waitResult?: boolean; payloads?: Buffer[]; steps?: { action: string; compensate: string }[]; options?: Record<string, unknown> } = {}) {
  const steps = opts.steps ?? [
    { action: gbusi.url("TransOut"), compensate: gbusi.url("TransOutRevert") },
    { action: gbusi.url("TransIn"), compensate: gbusi.url("TransInRevert") },
  ];
  return {
    Gid: gid,
    TransType: "saga",
    Steps: JSON.stringify(steps),
    BinPayloads: opts.payloads ?? steps.map((_, i) => json({ amount: 30, step: i })),
    TransOptions: { WaitResult: opts.waitResult ?? true, ...opts.options },
  };
}

function expectError(r: GrpcResult<unknown>, code: status, dtxCode?: string): asserts r is Extract<GrpcResult<unknown>, { ok: false }> {
  if (r.ok) throw new Error(`expected ${status[code]}, got OK`);
  expect({ code: status[r.code], details: r.details }).toMatchObject({ code: status[code] });
  if (dtxCode !== undefined) expect(r.dtxCode).toBe(dtxCode);
  expect(r.code).not.toBe(status.INTERNAL);
}

const names = (gid: string): string[] => gbusi.calls({ gid }).map((c) => `${c.name}:${c.op}`);

describe("dtmgimp.Dtm over gRPC", () => {
  it("NewGid returns a fresh gid", async () => {
    const a = await dtm.ok<DtmGidReply>("NewGid", {});
    const b = await dtm.ok<DtmGidReply>("NewGid", {});
    expect(a.Gid).toMatch(/^[A-Za-z0-9]{20,24}$/);
    expect(a.Gid).not.toBe(b.Gid);
  });

  it("Submit runs a saga over gRPC branches with dtm's metadata and the payload bytes", async () => {
    const gid = "grpc-saga-ok";
    const r = await dtm.call("Submit", sagaRequest(gid, { options: { BranchHeaders: { "x-trace": "t-1" } } }));
    expect(r).toEqual({ ok: true, reply: {} });
    const q = await dtx.client.query(gid);
    expect(q.transaction).toMatchObject({ status: "succeed", protocol: "grpc", trans_type: "saga" });
    expect(q.branches.map((b) => b.status)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
    expect(names(gid)).toEqual(["TransOut:action", "TransIn:action"]);
    const [first] = gbusi.calls({ gid });
    expect(first?.path).toBe("/busi.Busi/TransOut");
    expect(first?.metadata).toMatchObject({ "dtm-gid": gid, "dtm-trans_type": "saga", "dtm-branch_id": "01", "dtm-op": "action", "dtm-dtm": "", "x-trace": "t-1" });
    expect(first?.body.equals(json({ amount: 30, step: 0 }))).toBe(true);
  });

  it("Submit without wait_result answers at once and processes in the background", async () => {
    const gid = "grpc-saga-async";
    expect((await dtm.call("Submit", sagaRequest(gid, { waitResult: false }))).ok).toBe(true);
    await dtx.client.settle();
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("delivers a random 64 KiB binary payload byte for byte", async () => {
    const gid = "grpc-saga-bytes";
    const payloads = [randomBytes(64 * 1024), randomBytes(64 * 1024)];
    // Not valid UTF-8: stored and sent as raw bytes.
    payloads[0]![0] = 0xff;
    expect((await dtm.call("Submit", sagaRequest(gid, { payloads }))).ok).toBe(true);
    expect(gbusi.calls({ gid, name: "TransOut" })[0]?.body.equals(payloads[0]!)).toBe(true);
    expect(gbusi.calls({ gid, name: "TransIn" })[0]?.body.equals(payloads[1]!)).toBe(true);
    const stored = (await dtx.client.query(gid)).branches.find((b) => b.op === "action" && b.branch_id === "01");
    expect(Buffer.from(stored?.bin_data ?? "", "base64").equals(payloads[0]!)).toBe(true);
  });

  it("Prepare and Submit a msg; Abort fails a prepared msg", async () => {
    const msg = (gid: string, waitResult = true) => ({
      Gid: gid, TransType: "msg",
      Steps: JSON.stringify([{ action: gbusi.url("TransOut") }, { action: gbusi.url("TransIn") }]),
      BinPayloads: [Buffer.from([1, 2, 3]), Buffer.from([4, 5, 6])],
      QueryPrepared: gbusi.url("QueryPrepared"),
      TransOptions: { WaitResult: waitResult },
    });
    expect((await dtm.call("Prepare", msg("grpc-msg"))).ok).toBe(true);
    expect(await dtx.client.status("grpc-msg")).toBe("prepared");
    expect((await dtm.call("Submit", msg("grpc-msg"))).ok).toBe(true);
    expect(await dtx.client.status("grpc-msg")).toBe("succeed");
    expect(gbusi.calls({ gid: "grpc-msg" }).map((c) => [c.name, [...c.body]])).toEqual([["TransOut", [1, 2, 3]], ["TransIn", [4, 5, 6]]]);
    // prepare after submit: dtm's FAILURE
    expectError(await dtm.call("Prepare", msg("grpc-msg")), status.ABORTED, "FAILURE");

    expect((await dtm.call("Prepare", msg("grpc-msg-abort"))).ok).toBe(true);
    expect((await dtm.call("Abort", { Gid: "grpc-msg-abort", TransType: "msg" })).ok).toBe(true);
    expect(await dtx.client.status("grpc-msg-abort")).toBe("failed");
  });

  it("a msg branch answering FAILED_PRECONDITION leaves the msg submitted (a wait_result Submit is FAILED_PRECONDITION ONGOING, D11; dtm: ABORTED)", async () => {
    const gid = "grpc-msg-ongoing";
    gbusi.program({ gid, name: "TransIn" }, "ONGOING");
    const r = await dtm.call("Submit", {
      Gid: gid, TransType: "msg", Steps: JSON.stringify([{ action: gbusi.url("TransIn") }]), BinPayloads: [Buffer.from("x")],
      TransOptions: { WaitResult: true },
    });
    expectError(r, status.FAILED_PRECONDITION, "ONGOING");
    expect((await dtx.client.query(gid)).transaction).toMatchObject({ status: "submitted", next_cron_interval: 1 });
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("a prepared msg is checked back over gRPC (branch 00, op msg, empty message) and then delivered", async () => {
    const gid = "grpc-msg-checkback";
    expect((await dtm.call("Prepare", {
      Gid: gid, TransType: "msg", Steps: JSON.stringify([{ action: gbusi.url("TransIn") }]), BinPayloads: [Buffer.from("p")],
      QueryPrepared: gbusi.url("QueryPrepared"),
    })).ok).toBe(true);
    await dtx.client.cron(60_000);
    await dtx.client.settle();
    const [check] = gbusi.calls({ gid, name: "QueryPrepared" });
    expect(check).toMatchObject({ branchId: "00", op: "msg", transType: "msg" });
    expect(check?.body.length).toBe(0);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(gbusi.calls({ gid, name: "TransIn" })).toHaveLength(1);
  });

  it("Subscribe, Unsubscribe and DeleteTopic manage topics; a msg to the topic reaches a gRPC subscriber", async () => {
    const topic = "grpc-topic";
    expect((await dtm.call("Subscribe", { Topic: topic, URL: gbusi.url("TransIn"), Remark: "grpc" })).ok).toBe(true);
    expectError(await dtm.call("Subscribe", { Topic: topic, URL: gbusi.url("TransIn"), Remark: "" }), status.ABORTED, "TOPIC_SUBSCRIBER_EXISTS");
    const gid = "grpc-msg-topic";
    expect((await dtm.call("Submit", {
      Gid: gid, TransType: "msg", Steps: JSON.stringify([{ action: `topic://${topic}` }]), BinPayloads: [Buffer.from("to-topic")],
      TransOptions: { WaitResult: true },
    })).ok).toBe(true);
    expect(gbusi.calls({ gid }).map((c) => [c.name, c.body.toString()])).toEqual([["TransIn", "to-topic"]]);
    expect((await dtm.call("Unsubscribe", { Topic: topic, URL: gbusi.url("TransIn") })).ok).toBe(true);
    expectError(await dtm.call("Unsubscribe", { Topic: topic, URL: gbusi.url("TransIn") }), status.NOT_FOUND, "TOPIC_SUBSCRIBER_NOT_FOUND");
    expect((await dtm.call("DeleteTopic", { Topic: topic })).ok).toBe(true);
    expectError(await dtm.call("DeleteTopic", { Topic: topic }), status.NOT_FOUND, "TOPIC_NOT_FOUND");
    expectError(await dtm.call("Subscribe", { Topic: "", URL: gbusi.url("TransIn") }), status.INVALID_ARGUMENT, "INVALID_REQUEST");
  });

  it("PrepareWorkflow creates the workflow, returns recorded progress, and the cron resumes it over workflow.Workflow/Execute", async () => {
    const gid = "grpc-workflow";
    const input = Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63, 0xff]);
    const req = {
      Gid: gid, TransType: "workflow", QueryPrepared: gbusi.workflowUrl,
      CustomedData: JSON.stringify({ name: "wf-grpc", data: input.toString("base64") }),
    };
    const first = await dtm.ok<DtmProgressesReply>("PrepareWorkflow", req);
    expect(first).toEqual({ Transaction: { Gid: gid, Status: "prepared", RollbackReason: "", Result: "" }, Progresses: [] });

    expect((await dtm.call("RegisterBranch", {
      Gid: gid, TransType: "workflow", BranchID: "01", Op: "ignored", Data: { op: "action", status: "succeed" }, BusiPayload: Buffer.from("step-1-result"),
    })).ok).toBe(true);
    const again = await dtm.ok<DtmProgressesReply>("PrepareWorkflow", req);
    expect(again.Progresses).toEqual([{ Status: "succeed", BranchID: "01", Op: "action", BinData: Buffer.from("step-1-result") }]);

    await dtx.client.cron(60_000);
    await dtx.client.settle();
    const [resume] = gbusi.calls({ gid, name: "Execute" });
    expect(resume).toMatchObject({ path: "/workflow.Workflow/Execute", branchId: "00", op: "wf-grpc", transType: "workflow" });
    const wf = loadWorkflowProto()["workflow.WorkflowData"] as { format: string };
    expect(wf.format).toBe("Protocol Buffer 3 DescriptorProto");
    const decoded = (loadWorkflowProto()["workflow.Workflow"] as Record<string, { requestDeserialize: (b: Buffer) => { Data: Buffer } }>)["Execute"]!.requestDeserialize(resume!.body);
    expect(decoded.Data.equals(input)).toBe(true);

    expect((await dtm.call("Submit", { Gid: gid, TransType: "workflow", ReqExtra: { status: "succeed", result: Buffer.from("done").toString("base64") } })).ok).toBe(true);
    const done = await dtm.ok<DtmProgressesReply>("PrepareWorkflow", req);
    // dtm does not fill Result over gRPC (docs/protocol.md#grpc-api).
    expect(done.Transaction).toEqual({ Gid: gid, Status: "succeed", RollbackReason: "", Result: "" });
    expect((await dtx.client.query(gid)).transaction?.status).toBe("succeed");
  });

  it("answers grpc.health.v1 and server reflection", async () => {
    const health = loadPackageDefinition(loadSync(healthProtoPath, PROTO_LOADER_OPTIONS)) as unknown as { grpc: { health: { v1: { Health: ServiceClientConstructor } } } };
    const client = new health.grpc.health.v1.Health(`127.0.0.1:${dtx.grpcPort}`, credentials.createInsecure());
    const check = (service: string) => new Promise<unknown>((resolve, reject) => {
      (client as unknown as { Check: (r: unknown, cb: (e: Error | null, v: unknown) => void) => void }).Check({ service }, (e, v) => (e ? reject(e) : resolve(v)));
    });
    expect(await check("dtmgimp.Dtm")).toEqual({ status: "SERVING" });
    expect(await check("")).toEqual({ status: "SERVING" });
    client.close();

    const reflectionProto = join(fileURLToPath(new URL("../../node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto", import.meta.url)));
    const refl = loadPackageDefinition(loadSync(reflectionProto, PROTO_LOADER_OPTIONS)) as unknown as { grpc: { reflection: { v1: { ServerReflection: ServiceClientConstructor } } } };
    const rc = new refl.grpc.reflection.v1.ServerReflection(`127.0.0.1:${dtx.grpcPort}`, credentials.createInsecure());
    const services = await new Promise<string[]>((resolve, reject) => {
      const stream = (rc as unknown as { ServerReflectionInfo: () => NodeJS.ReadWriteStream & { write: (m: unknown) => void; end: () => void } }).ServerReflectionInfo();
      stream.on("data", (m: { list_services_response?: { service: { name: string }[] } }) => {
        resolve(m.list_services_response?.service.map((s) => s.name) ?? []);
        stream.end();
      });
      stream.on("error", reject);
      stream.write({ list_services: "*" });
    });
    expect(services).toContain("dtmgimp.Dtm");
    rc.close();
  });
});

describe("bad requests over gRPC are the client's error (D1), never INTERNAL", () => {
  it("a bad gid or trans type is INVALID_ARGUMENT and writes nothing", async () => {
    expectError(await dtm.call("Submit", { ...sagaRequest("bad gid;"), Gid: "bad gid;" }), status.INVALID_ARGUMENT, "INVALID_GID");
    expectError(await dtm.call("Submit", { Gid: "", TransType: "saga" }), status.INVALID_ARGUMENT, "INVALID_GID");
    expectError(await dtm.call("Submit", { Gid: "grpc-bad-type", TransType: "sagaa" }), status.INVALID_ARGUMENT, "INVALID_TRANS_TYPE");
    expectError(await dtm.call("Submit", { Gid: "grpc-empty-type", TransType: "" }), status.INVALID_ARGUMENT, "INVALID_TRANS_TYPE");
    expectError(await dtm.call("Prepare", { Gid: "grpc-bad-steps", TransType: "saga", Steps: "[{" }), status.INVALID_ARGUMENT, "INVALID_REQUEST");
    expectError(await dtm.call("Submit", { ...sagaRequest("grpc-bad-url"), Steps: JSON.stringify([{ action: "ftp://x/y", compensate: "" }]), BinPayloads: [Buffer.from("")] }), status.INVALID_ARGUMENT, "INVALID_URL");
    expectError(await dtm.call("Submit", { ...sagaRequest("grpc-bad-opts"), TransOptions: { TimeoutToFail: -1 } }), status.INVALID_ARGUMENT, "INVALID_OPTIONS");
    expectError(await dtm.call("RegisterBranch", { Gid: "grpc-nope", TransType: "saga", BranchID: "01" }), status.INVALID_ARGUMENT, "UNSUPPORTED_TRANS_TYPE");
    for (const gid of ["grpc-bad-type", "grpc-bad-steps", "grpc-bad-url", "grpc-bad-opts"]) {
      expect((await dtx.client.query(gid)).transaction).toBeNull();
    }
  });

  it("a message that is not valid protobuf is INVALID_ARGUMENT", async () => {
    // wire type 7 does not exist (protobufjs reads a truncated string leniently, so that is no test)
    expectError(await dtm.raw("/dtmgimp.Dtm/Submit", Buffer.from([0x07])), status.INVALID_ARGUMENT, "INVALID_REQUEST");
    expectError(await dtm.raw("/dtmgimp.Dtm/RegisterBranch", Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), status.INVALID_ARGUMENT, "INVALID_REQUEST");
  });

  it("a message over 4 MiB and a payload over the payload limit are RESOURCE_EXHAUSTED", async () => {
    expectError(await dtm.call("Submit", sagaRequest("grpc-huge", { payloads: [Buffer.alloc(5 * 1024 * 1024), Buffer.alloc(1)] })), status.RESOURCE_EXHAUSTED);
    expectError(await dtm.call("Submit", sagaRequest("grpc-big", { payloads: [Buffer.alloc(300 * 1024), Buffer.alloc(1)] })), status.RESOURCE_EXHAUSTED, "PAYLOAD_TOO_LARGE");
    expect((await dtx.client.query("grpc-huge")).transaction).toBeNull();
    expect((await dtx.client.query("grpc-big")).transaction).toBeNull();
  });

  it("dtm's FAILURE is ABORTED and an unknown gid is NOT_FOUND", async () => {
    expectError(await dtm.call("Abort", { Gid: "grpc-no-such", TransType: "tcc" }), status.NOT_FOUND, "TRANS_NOT_FOUND");
    expect((await dtm.call("Submit", sagaRequest("grpc-abort-saga"))).ok).toBe(true);
    expectError(await dtm.call("Abort", { Gid: "grpc-abort-saga", TransType: "saga" }), status.ABORTED, "FAILURE");
    expectError(await dtm.call("Submit", { Gid: "grpc-abort-saga", TransType: "tcc" }), status.ABORTED, "FAILURE");
  });
});

describe("saga with gRPC branches", () => {
  it("an ABORTED action fails the saga and compensates in reverse order; Submit is ABORTED", async () => {
    const gid = "grpc-saga-failure";
    gbusi.program({ gid, name: "TransIn" }, "FAILURE");
    const r = await dtm.call("Submit", sagaRequest(gid));
    expectError(r, status.ABORTED, "FAILURE");
    expect(r.details).toContain("FAILURE");
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toContain("busi failure");
    expect(q.branches.map((b) => b.status)).toEqual(["succeed", "succeed", "succeed", "failed"]);
    expect(names(gid)).toEqual(["TransOut:action", "TransIn:action", "TransInRevert:compensate", "TransOutRevert:compensate"]);
    expect(gbusi.calls({ gid, name: "TransOutRevert" })[0]?.body.equals(json({ amount: 30, step: 0 }))).toBe(true);
  });

  it("FAILED_PRECONDITION and ABORTED \"ONGOING\" are ONGOING: retried at the same interval", async () => {
    for (const outcome of ["ONGOING", "LEGACY_ONGOING"] as const) {
      const gid = `grpc-saga-${outcome.toLowerCase()}`;
      gbusi.program({ gid, name: "TransIn" }, outcome);
      expectError(await dtm.call("Submit", sagaRequest(gid)), status.FAILED_PRECONDITION, "ONGOING");
      const t = (await dtx.client.query(gid)).transaction;
      expect(t).toMatchObject({ status: "submitted", next_cron_interval: 1 });
      await dtx.client.cron(60_000);
      expect(await dtx.client.status(gid)).toBe("succeed");
      expect(gbusi.calls({ gid, name: "TransIn" })).toHaveLength(2);
      expect(gbusi.calls({ gid, op: "compensate" })).toHaveLength(0);
    }
  });

  it("any other status (INTERNAL) is an error: retried with backoff", async () => {
    const gid = "grpc-saga-error";
    gbusi.program({ gid, name: "TransIn" }, "ERROR", "ERROR");
    expectError(await dtm.call("Submit", sagaRequest(gid)), status.FAILED_PRECONDITION, "ONGOING");
    expect((await dtx.client.query(gid)).transaction?.next_cron_interval).toBe(2);
    await dtx.client.cron(60_000);
    expect((await dtx.client.query(gid)).transaction?.next_cron_interval).toBe(4);
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(gbusi.calls({ gid, name: "TransIn" })).toHaveLength(3);
  });

  it("a hung participant is cut off at request_timeout (DEADLINE_EXCEEDED is an error) and retried", async () => {
    const gid = "grpc-saga-deadline";
    gbusi.program({ gid, name: "TransIn" }, "HANG");
    // request_timeout in fractions of a second needs the JSON API (DtmTransOptions has whole seconds).
    const started = Date.now();
    const r = await dtx.client.submit({
      gid, trans_type: "saga", protocol: "grpc", wait_result: true, request_timeout: 0.2,
      steps: [{ action: gbusi.url("TransOut"), compensate: gbusi.url("TransOutRevert") }, { action: gbusi.url("TransIn"), compensate: gbusi.url("TransInRevert") }],
      payloads: ["a", "b"],
    });
    const elapsed = Date.now() - started;
    expect(r.status).toBe(425);
    expect(elapsed).toBeLessThan(950); // the test default request timeout is 1 s
    expect((await dtx.client.query(gid)).transaction).toMatchObject({ status: "submitted", next_cron_interval: 2 });
    gbusi.releaseHung();
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(gbusi.calls({ gid, name: "TransIn" })).toHaveLength(2);
  });

  it("mixes HTTP and gRPC branches in one saga", async () => {
    const gid = "grpc-saga-mixed";
    gbusi.program({ gid, name: "TransIn" }, "FAILURE");
    const r = await dtm.call("Submit", sagaRequest(gid, {
      steps: [
        { action: busi.url("TransOut"), compensate: busi.url("TransOutRevert") },
        { action: gbusi.url("TransIn"), compensate: gbusi.url("TransInRevert") },
      ],
    }));
    expectError(r, status.ABORTED);
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.op}`)).toEqual(["TransOut:action", "TransOutRevert:compensate"]);
    expect(busi.calls({ gid })[0]?.body).toBe(JSON.stringify({ amount: 30, step: 0 }));
    expect(names(gid)).toEqual(["TransIn:action", "TransInRevert:compensate"]);
    expect(await dtx.client.branchStatuses(gid)).toEqual(["succeed", "succeed", "succeed", "failed"]);
  });
});

describe("a gRPC participant that is down (UNAVAILABLE)", () => {
  let down: GrpcBusi;
  beforeAll(async () => {
    down = await startGrpcBusi();
  });
  afterAll(async () => {
    await down?.close();
  });

  it("is retried, and reached again once it is back, through the cached channel", async () => {
    // Warm the coordinator's channel to this participant first.
    const warm = "grpc-down-warm";
    const steps = [{ action: down.url("TransOut"), compensate: down.url("TransOutRevert") }];
    expect((await dtm.call("Submit", sagaRequest(warm, { steps, payloads: [Buffer.from("w")] }))).ok).toBe(true);

    await down.stop();
    const gid = "grpc-down";
    expectError(await dtm.call("Submit", sagaRequest(gid, { steps, payloads: [Buffer.from("d")] })), status.FAILED_PRECONDITION, "ONGOING");
    expect((await dtx.client.query(gid)).transaction).toMatchObject({ status: "submitted", next_cron_interval: 2 });
    await dtx.client.cron(60_000); // still down
    expect((await dtx.client.query(gid)).transaction).toMatchObject({ status: "submitted", next_cron_interval: 4 });

    await down.start();
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(down.calls({ gid })).toHaveLength(1);
    expect(down.calls({ gid })[0]?.body.toString()).toBe("d");
  });

  it("GrpcInvoker: a channel left in TRANSIENT_FAILURE recovers as soon as the target is back", async () => {
    const invoker = new GrpcInvoker();
    const call = (gid: string): BranchCall => ({
      gid, transType: "saga", protocol: "grpc", branchId: "01", op: "action", url: down.url("TransOut"),
      body: Buffer.from("x"), headers: {}, timeoutMs: 2000,
    });
    try {
      expect(await invoker.invoke(call("inv-1"))).toEqual({ kind: "success" });
      await down.stop();
      for (let i = 0; i < 3; i++) {
        const outcome = await invoker.invoke(call("inv-2"));
        // UNAVAILABLE, or CANCELLED for a call that raced the server going away
        expect(outcome.kind === "error" && outcome.message).toMatch(/UNAVAILABLE|CANCELLED/);
      }
      await down.start();
      expect(await invoker.invoke(call("inv-3"))).toEqual({ kind: "success" });
      expect(down.calls({ gid: "inv-3" })).toHaveLength(1);
      expect(invoker.channels).toBe(1);
    } finally {
      await invoker.close();
      await down.start();
    }
  });
});

describe("GrpcInvoker: a pass that loses its claim cuts off its calls (docs/fencing.md)", () => {
  it("aborting the call's signal ends a call in flight at once as a CANCELLED error; the channel serves the next call", async () => {
    const invoker = new GrpcInvoker();
    try {
      gbusi.program({ gid: "abort-1" }, "HANG");
      const abort = new AbortController();
      const pending = invoker.invoke({
        gid: "abort-1", transType: "saga", protocol: "grpc", branchId: "01", op: "action", url: gbusi.url("TransOut"),
        body: Buffer.from("x"), headers: {}, timeoutMs: 60_000, signal: abort.signal,
      });
      await gbusi.waitForCalls({ gid: "abort-1" }, 1);
      abort.abort(new Error("claim lost"));
      const outcome = await pending;
      expect(outcome.kind === "error" && outcome.message).toMatch(/CANCELLED: Cancelled: claim lost/);
      // The channel still serves the next call.
      expect(await invoker.invoke({
        gid: "abort-2", transType: "saga", protocol: "grpc", branchId: "01", op: "action", url: gbusi.url("TransOut"),
        body: Buffer.from("y"), headers: {}, timeoutMs: 2000,
      })).toEqual({ kind: "success" });
      expect(invoker.channels).toBe(1);
    } finally {
      await invoker.close();
    }
  });
});

describe("GrpcInvoker: a peer that accepts connections but never speaks", () => {
  it("its channel is dropped when a call's whole deadline passes in silence; the next call connects afresh", async () => {
    const sockets: Socket[] = [];
    const blackHole = createNetServer((socket) => {
      sockets.push(socket); // accepted, read, never answered
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => blackHole.listen(0, "127.0.0.1", resolve));
    const { port } = blackHole.address() as AddressInfo;
    const invoker = new GrpcInvoker();
    try {
      const call: BranchCall = {
        gid: "g", transType: "saga", protocol: "grpc", branchId: "01", op: "action", url: `127.0.0.1:${port}/busi.Busi/TransOut`,
        body: Buffer.from("x"), headers: {}, timeoutMs: 200,
      };
      for (let i = 1; i <= 2; i++) {
        const outcome = await invoker.invoke(call);
        expect(outcome.kind === "error" && outcome.message).toMatch(/DEADLINE_EXCEEDED/);
        expect(sockets).toHaveLength(i); // each call had to open its own connection
        expect(invoker.channels).toBe(0);
      }
    } finally {
      await invoker.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => blackHole.close(() => resolve()));
    }
  });
});

describe("TCC and XA with gRPC branches", () => {
  const busiPayload = Buffer.from([0x08, 0x1e, 0x12, 0x02, 0x6f, 0x6b]); // a small protobuf: {1: 30, 2: "ok"}

  async function tcc(gid: string, n: number): Promise<void> {
    expect((await dtm.call("Prepare", { Gid: gid, TransType: "tcc" })).ok).toBe(true);
    for (let i = 1; i <= n; i++) {
      const r = await dtm.call("RegisterBranch", {
        Gid: gid, TransType: "tcc", BranchID: `0${i}`, Op: "try",
        Data: { confirm: gbusi.url(`Confirm${i}`), cancel: gbusi.url(`Cancel${i}`) }, BusiPayload: busiPayload,
      });
      expect(r.ok).toBe(true);
    }
  }

  it("Submit confirms every branch in reverse order with the registered payload", async () => {
    const gid = "grpc-tcc";
    await tcc(gid, 2);
    expect((await dtm.call("Submit", { Gid: gid, TransType: "tcc", TransOptions: { WaitResult: true } })).ok).toBe(true);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(names(gid)).toEqual(["Confirm2:confirm", "Confirm1:confirm"]);
    expect(gbusi.calls({ gid })[0]?.body.equals(busiPayload)).toBe(true);
    expect(gbusi.calls({ gid })[0]?.metadata).toMatchObject({ "dtm-trans_type": "tcc", "dtm-branch_id": "02", "dtm-op": "confirm" });
  });

  it("a Confirm answering ONGOING, INTERNAL, even ABORTED, is retried until it succeeds", async () => {
    const gid = "grpc-tcc-retry";
    await tcc(gid, 1);
    gbusi.program({ gid, name: "Confirm1" }, "ONGOING", "ERROR", "FAILURE");
    expectError(await dtm.call("Submit", { Gid: gid, TransType: "tcc", TransOptions: { WaitResult: true } }), status.FAILED_PRECONDITION, "ONGOING");
    for (let i = 0; i < 3; i++) await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(gbusi.calls({ gid, name: "Confirm1" })).toHaveLength(4);
  });

  it("Abort cancels every registered branch", async () => {
    const gid = "grpc-tcc-abort";
    await tcc(gid, 2);
    expect((await dtm.call("Abort", { Gid: gid, TransType: "tcc", RollbackReason: "try 02 failed", TransOptions: { WaitResult: true } })).ok).toBe(true);
    const q = await dtx.client.query(gid);
    expect(q.transaction).toMatchObject({ status: "failed", rollback_reason: "try 02 failed" });
    expect(names(gid)).toEqual(["Cancel2:cancel", "Cancel1:cancel"]);
    // a second registration after the abort is dtm's FAILURE
    expectError(await dtm.call("RegisterBranch", { Gid: gid, TransType: "tcc", BranchID: "03", Data: { confirm: "", cancel: "" } }), status.ABORTED, "TRANS_NOT_PREPARED");
    expectError(await dtm.call("RegisterBranch", { Gid: "grpc-tcc-nobody", TransType: "tcc", BranchID: "01", Data: { confirm: "", cancel: "" } }), status.ABORTED, "TRANS_NOT_PREPARED");
  });

  it("a BusiPayload that is not valid UTF-8 is stored and delivered to Confirm byte for byte", async () => {
    const gid = "grpc-tcc-binary";
    const payload = Buffer.from([0x08, 0x96, 0x01, 0xff, 0x00, 0xc3]);
    expect((await dtm.call("Prepare", { Gid: gid, TransType: "tcc" })).ok).toBe(true);
    const r = await dtm.call("RegisterBranch", {
      Gid: gid, TransType: "tcc", BranchID: "01", Data: { confirm: gbusi.url("Confirm1"), cancel: gbusi.url("Cancel1") }, BusiPayload: payload,
    });
    expect(r.ok).toBe(true);
    const stored = (await dtx.client.query(gid)).branches.map((b) => Buffer.from(b.bin_data ?? "", "base64"));
    expect(stored).toEqual([payload, payload]);
    expect((await dtm.call("Submit", { Gid: gid, TransType: "tcc", TransOptions: { WaitResult: true } })).ok).toBe(true);
    const [confirm] = gbusi.calls({ gid, name: "Confirm1" });
    expect(Buffer.from(confirm!.body).equals(payload)).toBe(true);
  });

  it("XA commits over gRPC with an empty message", async () => {
    const gid = "grpc-xa";
    expect((await dtm.call("Prepare", { Gid: gid, TransType: "xa" })).ok).toBe(true);
    expect((await dtm.call("RegisterBranch", { Gid: gid, TransType: "xa", BranchID: "01", Data: { url: gbusi.url("XaCommit") } })).ok).toBe(true);
    expect((await dtm.call("Submit", { Gid: gid, TransType: "xa", TransOptions: { WaitResult: true } })).ok).toBe(true);
    expect(gbusi.calls({ gid }).map((c) => [c.name, c.op, c.body.length])).toEqual([["XaCommit", "commit", 0]]);
  });
});

describe("graceful shutdown", () => {
  it("stop() lets a running gRPC call finish, then refuses new ones", async () => {
    const other = await startCoordinator();
    const client = new DtmGrpcClient(`127.0.0.1:${other.grpcPort}`);
    try {
      const gid = "grpc-shutdown";
      gbusi.program({ gid, name: "TransIn" }, "HANG");
      const pending = client.call("Submit", sagaRequest(gid, { options: { RequestTimeout: 1 } }));
      await gbusi.waitForCalls({ gid, name: "TransIn" }, 1);
      const stopping = other.stop();
      // The in-flight Submit gets its real answer (the branch timed out: the saga is unfinished,
      // wait_result ONGOING), not a cancellation.
      expectError(await pending, status.FAILED_PRECONDITION, "ONGOING");
      await stopping;
      expectError(await client.call("NewGid", {}), status.UNAVAILABLE);
    } finally {
      client.close();
    }
  });
});
