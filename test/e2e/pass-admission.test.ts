// The two overload caps (docs/overload.md) on a real coordinator with tiny limits: two passes in
// flight, a backlog of one. Passes are held in flight by a participant that hangs until released.
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DtmGrpcClient } from "../busi/grpc-busi.ts";
import { sagaBody } from "../helpers/client.ts";
import { useCoordinatorWithBusi } from "../helpers/e2e-env.ts";

// requestTimeout far beyond the test: a hung call holds its pass until the test releases it.
const env = useCoordinatorWithBusi({ overload: { maxPassesInFlight: 2, maxBacklog: 1 }, requestTimeout: 60 });
let grpc: DtmGrpcClient;
beforeAll(() => {
  grpc = new DtmGrpcClient(`127.0.0.1:${env.dtx.grpcPort}`);
});
afterAll(() => grpc.close());

const post = (path: string, body: unknown): Promise<Response> =>
  fetch(`${env.dtx.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
const oneStep = (gid: string, extra: Record<string, unknown> = {}): Record<string, unknown> => sagaBody(gid, (n) => env.busi.url(n), extra, 1);

describe("overload caps", () => {
  it("past the pass cap stores the trans due now for the cron; past the backlog refuses writes with 503 OVERLOADED and writes nothing; reads stay served", async () => {
    const { busi, dtx } = env;
    busi.programAlways({ name: "TransOut" }, "HANG");
    // Two passes fill the cap, each held by its hanging branch call.
    for (const gid of ["adm-a", "adm-b"]) expect((await dtx.client.submit(oneStep(gid))).status).toBe(200);
    await busi.waitForCalls({ name: "TransOut" }, 2);

    // Third: acknowledged and durable, but not run; with wait_result the truth is "unfinished".
    const before = Date.now();
    const deferred = await dtx.client.submit(oneStep("adm-c", { wait_result: true }));
    expect(deferred.status).toBe(425);
    expect(deferred.body).toMatchObject({ dtm_result: "ONGOING", code: "ONGOING" });
    const c = await dtx.client.query("adm-c");
    expect(c.transaction?.status).toBe("submitted");
    expect(Date.parse(c.transaction?.next_cron_time ?? "")).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(c.transaction?.next_cron_time ?? "")).toBeGreaterThanOrEqual(before - 1000);
    expect(busi.calls({ gid: "adm-c" })).toEqual([]);

    // The backlog (1) is full too: every write is refused before anything is written.
    const refused = await post("/api/dtmsvr/submit", oneStep("adm-d"));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.json()).toMatchObject({ code: "OVERLOADED" });
    for (const path of ["prepare", "registerBranch", "prepareWorkflow"]) {
      const r = await post(`/api/dtmsvr/${path}`, { gid: `adm-${path}`, trans_type: "tcc", branch_id: "01", confirm: busi.url("C"), cancel: busi.url("X") });
      expect(r.status, path).toBe(503);
      expect(r.headers.get("retry-after"), path).toBe("1");
    }
    const rpc = await post("/api/json-rpc", { jsonrpc: "2.0", id: "1", method: "submit", params: oneStep("adm-rpc") });
    expect(rpc.status).toBe(503);
    expect(rpc.headers.get("retry-after")).toBe("1");
    expect(await rpc.json()).toMatchObject({ error: { code: -32000, data: { code: "OVERLOADED" } } });
    const g = await grpc.call("Prepare", { Gid: "adm-grpc", TransType: "tcc" });
    expect(g).toMatchObject({ ok: false, code: status.UNAVAILABLE, dtxCode: "OVERLOADED" });
    for (const gid of ["adm-d", "adm-prepare", "adm-registerBranch", "adm-prepareWorkflow", "adm-rpc", "adm-grpc"]) {
      expect(await dtx.client.query(gid), gid).toEqual({ transaction: null, branches: [] });
    }
    expect(busi.calls({ gid: "adm-d" })).toEqual([]);

    // Reads stay served.
    for (const path of ["/api/ping", "/api/dtx/health", "/api/metrics", "/api/dtmsvr/query?gid=adm-c", "/api/dtmsvr/all", "/api/dtmsvr/newGid"]) {
      expect((await fetch(`${dtx.url}${path}`)).status, path).toBe(200);
    }

    // The cron respects the cap: no slot, no claim.
    expect(await dtx.client.cron()).toBe(0);
    expect(busi.calls({ gid: "adm-c" })).toEqual([]);

    // Slots free up: the held calls fail (500) and back off; the cron then runs everything.
    busi.releaseHung();
    busi.reset();
    await dtx.client.settle();
    // A round claims no more than the free slots (2), so it takes more than one round.
    let ran = await dtx.client.cron(60_000);
    for (let round = 0, n = ran; n > 0 && round < 10; round++) ran += n = await dtx.client.cron();
    expect(ran).toBe(3);
    await dtx.client.settle();
    for (const gid of ["adm-a", "adm-b", "adm-c"]) expect(await dtx.client.status(gid), gid).toBe("succeed");
    // The backlog is empty again: writes are accepted.
    expect((await dtx.client.submit(oneStep("adm-e", { wait_result: true }))).status).toBe(200);
  });

  it("an abort past the pass cap is accepted (it ends work) and its rollback is left to the cron", async () => {
    const { busi, dtx } = env;
    const gid = "adm-tcc";
    expect((await post("/api/dtmsvr/prepare", { gid, trans_type: "tcc" })).status).toBe(200);
    const reg = await post("/api/dtmsvr/registerBranch", { gid, trans_type: "tcc", branch_id: "01", confirm: busi.url("Confirm"), cancel: busi.url("Cancel"), data: "{}" });
    expect(reg.status).toBe(200);
    busi.programAlways({ name: "TransOut" }, "HANG");
    for (const held of ["adm-f", "adm-g"]) expect((await dtx.client.submit(oneStep(held))).status).toBe(200);
    await busi.waitForCalls({ name: "TransOut" }, 2);

    const aborted = await post("/api/dtmsvr/abort", { gid, trans_type: "tcc", wait_result: true });
    expect(aborted.status).toBe(425);
    expect(await dtx.client.status(gid)).toBe("aborting");
    expect(busi.calls({ gid })).toEqual([]);

    busi.releaseHung();
    busi.reset();
    await dtx.client.settle();
    let ran = await dtx.client.cron(60_000);
    for (let round = 0, n = ran; n > 0 && round < 10; round++) ran += n = await dtx.client.cron();
    await dtx.client.settle();
    expect(await dtx.client.status(gid)).toBe("failed");
    expect(busi.calls({ gid }).map((c) => c.op)).toEqual(["cancel"]);
  });
});
