/**
 * The gRPC transport against the coordinator's real `dtmgimp.Dtm` server, with gRPC participants
 * (the test gRPC busi) and HTTP ones (busi), and the workflow resume service on a grpc-js server.
 */
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { ServiceDefinition, UntypedServiceImplementation } from "@grpc/grpc-js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../../test/busi/index.ts";
import { startBusi } from "../../test/busi/index.ts";
import type { GrpcBusi } from "../../test/busi/grpc-busi.ts";
import { startGrpcBusi } from "../../test/busi/grpc-busi.ts";
import { DtxClient, DtxFailure, DtxOngoing, Msg, Saga, WorkflowRegistry, decodeWorkflowData, tccGlobalTransaction } from "../src/index.ts";
import type { SdkEnv } from "./helpers.ts";
import { gidFor, startSdkEnv } from "./helpers.ts";

let env: SdkEnv;
let client: DtxClient;
let busi: Busi;
let gbusi: GrpcBusi;

beforeAll(async () => {
  env = await startSdkEnv();
  if (!env.grpc) throw new Error("the test coordinator serves no gRPC (startCoordinator() returned no grpcPort)");
  client = env.grpc;
  busi = await startBusi();
  gbusi = await startGrpcBusi({ methods: ["TryOut", "TryIn", "Remote"] });
});
afterAll(async () => {
  await env?.stop();
  await busi?.close();
  await gbusi?.close();
});
beforeEach(() => {
  busi.reset();
  gbusi.reset();
});

describe("GrpcTransport", () => {
  it("is selected by grpcServer and reports its protocol and address", async () => {
    expect(client.protocol).toBe("grpc");
    expect(client.server).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await client.newGid()).toMatch(/^\S{10,}$/);
  });

  it("saga: raw-bytes payloads reach gRPC participants with dtm-* metadata; the trans is recorded as grpc", async () => {
    const gid = gidFor("g-saga");
    const payload = Uint8Array.from([0x0a, 0x02, 0xff, 0x00]);
    await new Saga(client, gid, { waitResult: true, branchHeaders: { "x-tenant": "t9" } })
      .add(gbusi.url("TransOut"), gbusi.url("TransOutRevert"), payload)
      .add(busi.url("TransIn"), busi.url("TransInRevert"), { amount: 30 })
      .submit();
    const q = await client.query(gid);
    expect(q.transaction).toMatchObject({ status: "succeed", protocol: "grpc" });
    const call = gbusi.calls({ gid })[0];
    expect(call?.body.equals(Buffer.from(payload))).toBe(true);
    expect(call).toMatchObject({ name: "TransOut", transType: "saga", branchId: "01", op: "action" });
    expect(call?.metadata["x-tenant"]).toBe("t9");
    expect(busi.calls({ gid })[0]?.body).toBe('{"amount":30}');
  });

  it("saga: an ABORTED participant rolls back and submit with waitResult throws DtxFailure", async () => {
    const gid = gidFor("g-saga-fail");
    gbusi.program({ gid, name: "TransIn" }, "FAILURE");
    const err = await new Saga(client, gid, { waitResult: true })
      .add(gbusi.url("TransOut"), gbusi.url("TransOutRevert"), "a")
      .add(gbusi.url("TransIn"), gbusi.url("TransInRevert"), "b")
      .submit()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxFailure);
    expect(err).toMatchObject({ grpcCode: 10 });
    expect(gbusi.calls({ gid }).map((c) => c.name)).toEqual(["TransOut", "TransIn", "TransInRevert", "TransOutRevert"]);
  });

  it("saga: with waitResult, a participant still erroring gives DtxOngoing (FAILED_PRECONDITION), not DtxFailure; it succeeds later (D11)", async () => {
    const gid = gidFor("g-saga-ongoing");
    gbusi.program({ gid, name: "TransIn" }, "ERROR");
    const err = await new Saga(client, gid, { waitResult: true })
      .add(gbusi.url("TransOut"), gbusi.url("TransOutRevert"), "a")
      .add(gbusi.url("TransIn"), gbusi.url("TransInRevert"), "b")
      .submit()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxOngoing);
    expect(err).not.toBeInstanceOf(DtxFailure);
    expect(err).toMatchObject({ code: "ONGOING", grpcCode: 9, serverCode: "ONGOING" });
    await env.dtx.client.cron(60_000);
    expect((await client.query(gid)).transaction?.status).toBe("succeed");
    expect(gbusi.calls({ gid }).map((c) => c.name)).toEqual(["TransOut", "TransIn", "TransIn"]);
  });

  it("msg: doAndSubmit asks a gRPC check-back after an unknown local outcome", async () => {
    const gid = gidFor("g-msg");
    await expect(
      new Msg(client, gid, { waitResult: true }).add(gbusi.url("TransIn"), "m").doAndSubmit(gbusi.url("QueryPrepared"), async () => {
        throw new Error("timeout talking to the database");
      }),
    ).rejects.toThrow("timeout talking to the database");
    const check = gbusi.calls({ gid, name: "QueryPrepared" });
    expect(check.map((c) => `${c.transType}:${c.branchId}:${c.op}`)).toEqual(["msg:00:msg"]);
    expect(check[0]?.metadata["dtm-dtm"]).toBe(client.server);
    expect(await env.dtx.client.status(gid)).toBe("succeed");
    expect(gbusi.calls({ gid, name: "TransIn" })).toHaveLength(1);
  });

  it("tcc: gRPC Try calls carry dtm-* metadata; a Try ABORTED cancels every branch", async () => {
    const ok = gidFor("g-tcc");
    await tccGlobalTransaction(client, ok, async (tcc) => {
      await tcc.callBranch("p1", gbusi.url("TryOut"), gbusi.url("Confirm1"), gbusi.url("Cancel1"));
      await tcc.callBranch("p2", gbusi.url("TryIn"), gbusi.url("Confirm2"), gbusi.url("Cancel2"));
    }, { waitResult: true });
    expect(gbusi.calls({ gid: ok }).map((c) => `${c.name}:${c.op}:${c.branchId}`)).toEqual(["TryOut:try:01", "TryIn:try:02", "Confirm2:confirm:02", "Confirm1:confirm:01"]);
    expect(gbusi.calls({ gid: ok })[0]?.metadata).toMatchObject({ "dtm-gid": ok, "dtm-trans_type": "tcc", "dtm-dtm": client.server });
    expect(gbusi.calls({ gid: ok, name: "Confirm1" })[0]?.body.toString()).toBe("p1");

    const bad = gidFor("g-tcc-fail");
    gbusi.program({ gid: bad, name: "TryIn" }, "FAILURE");
    await expect(tccGlobalTransaction(client, bad, async (tcc) => {
      await tcc.callBranch("p1", gbusi.url("TryOut"), gbusi.url("Confirm1"), gbusi.url("Cancel1"));
      await tcc.callBranch("p2", gbusi.url("TryIn"), gbusi.url("Confirm2"), gbusi.url("Cancel2"));
    }, { waitResult: true })).rejects.toBeInstanceOf(DtxFailure);
    expect(gbusi.calls({ gid: bad }).map((c) => c.name)).toEqual(["TryOut", "TryIn", "Cancel2", "Cancel1"]);
    expect(await env.dtx.client.status(bad)).toBe("failed");
  });

  it("maps the coordinator's gRPC errors to stable codes", async () => {
    await expect(new Saga(client, "bad gid!").add(busi.url("A"), "", {}).submit()).rejects.toMatchObject({ code: "INVALID_ARGUMENT", serverCode: "INVALID_GID", grpcCode: 3 });
    await expect(new Saga(client, gidFor("g-frac"), { retryInterval: 0.5 }).add(busi.url("A"), "", {}).submit()).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    const grpcOnly = new DtxClient({ grpcServer: client.server });
    await expect(grpcOnly.query("x")).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await grpcOnly.close();
    const down = new DtxClient({ grpcServer: "127.0.0.1:1", timeoutMs: 2_000 });
    await expect(down.newGid()).rejects.toMatchObject({ code: expect.stringMatching(/^(UNAVAILABLE|TIMEOUT)$/) });
    await down.close();
  });
});

describe("Workflow over gRPC", () => {
  let server: Server;
  let registry: WorkflowRegistry;
  let resumes = 0;

  beforeAll(async () => {
    server = new Server();
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    registry = new WorkflowRegistry({ client, callbackUrl: `127.0.0.1:${port}/workflow.Workflow/Execute` });
    const svc = registry.grpcService();
    const execute = svc.implementation.Execute;
    server.addService(svc.definition as unknown as ServiceDefinition, {
      Execute: (call: Parameters<typeof execute>[0], cb: Parameters<typeof execute>[1]) => {
        resumes += 1;
        execute(call, cb);
      },
    } as unknown as UntypedServiceImplementation);
    registry.register("grpc-transfer", async (wf) => {
      const out = await wf.callGrpc(gbusi.url("TransOut"), wf.data);
      const res = await wf.callHttp(busi.url("TransIn"), { body: wf.text() });
      return `${out.length}:${res.text()}`;
    });
  });
  afterAll(() => {
    server?.forceShutdown();
  });

  it("prepares, records and submits over gRPC; the coordinator resumes it through workflow.Workflow/Execute", async () => {
    const gid = gidFor("g-wf");
    busi.program({ gid, name: "TransIn" }, "ONGOING");
    await expect(registry.execute("grpc-transfer", gid, "input-bytes")).rejects.toBeInstanceOf(DtxOngoing);
    const q1 = await client.query(gid);
    expect(q1.transaction).toMatchObject({ status: "prepared", protocol: "grpc" });
    expect(gbusi.calls({ gid })[0]?.body.toString()).toBe("input-bytes");
    expect(gbusi.calls({ gid })[0]).toMatchObject({ transType: "workflow", branchId: "01", op: "action" });

    await env.dtx.client.cron(60_000);
    expect(resumes).toBe(1);
    const q2 = await client.query(gid);
    expect(q2.transaction?.status).toBe("succeed");
    expect(Buffer.from(String(q2.transaction?.result), "base64").toString()).toBe('0:{"dtm_result":"SUCCESS"}');
    expect(gbusi.calls({ gid, name: "TransOut" })).toHaveLength(1);
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(2);
    // dtm's gRPC PrepareWorkflow reply has no result: a finished workflow re-executed over gRPC returns empty bytes.
    expect((await registry.execute("grpc-transfer", gid, "input-bytes")).length).toBe(0);
  });

  it("decodeWorkflowData reads WorkflowData{Data}", () => {
    expect(decodeWorkflowData(Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63])).toString()).toBe("abc");
    expect(decodeWorkflowData(Buffer.alloc(0)).length).toBe(0);
    expect(decodeWorkflowData(Buffer.from([0x10, 0x05, 0x0a, 0x01, 0x7a])).toString()).toBe("z");
  });
});
