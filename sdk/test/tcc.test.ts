import type { FastifyRequest } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../../test/busi/index.ts";
import { startBusi } from "../../test/busi/index.ts";
import { DtxFailure, DtxOngoing, branchInfoFromQuery, fastifyHandler, tccFromBranch, tccGlobalTransaction } from "../src/index.ts";
import type { App, SdkEnv } from "./helpers.ts";
import { gidFor, startApp, startSdkEnv } from "./helpers.ts";

let env: SdkEnv;
let busi: Busi;
let rm: App;

beforeAll(async () => {
  env = await startSdkEnv();
  busi = await startBusi();
  // A participant whose Try opens a nested TCC under its own branch (Go TccFromQuery).
  rm = await startApp((app) => {
    app.post(
      "/tcc/NestedTry",
      fastifyHandler(async (req: FastifyRequest) => {
        const info = branchInfoFromQuery(req.query as Record<string, string>);
        const nested = tccFromBranch(info);
        const res = await nested.callBranch(req.body ?? null, busi.url("InnerTry"), busi.url("InnerConfirm"), busi.url("InnerCancel"));
        return { nested: info.branchId, inner: res.status };
      }),
    );
  });
});
afterAll(async () => {
  await env?.stop();
  await busi?.close();
  await rm?.close();
});
beforeEach(() => busi.reset());

const tries = (b: Busi, gid: string) => b.calls({ gid }).map((c) => `${c.name}:${c.op}:${c.branchId}`);

describe("tccGlobalTransaction", () => {
  it("registers branches, calls each Try, submits; the coordinator confirms in reverse order", async () => {
    const gid = gidFor("tcc-ok");
    const result = await tccGlobalTransaction(env.http, gid, async (tcc) => {
      const r1 = await tcc.callBranch({ amount: 30 }, busi.url("TransOutTry"), busi.url("TransOutConfirm"), busi.url("TransOutCancel"));
      await tcc.callBranch({ amount: 30 }, busi.url("TransInTry"), busi.url("TransInConfirm"), busi.url("TransInCancel"));
      return r1.json<{ dtm_result: string }>().dtm_result;
    }, { waitResult: true, branchHeaders: { "x-trace": "abc" } });
    expect(result).toBe("SUCCESS");
    expect(tries(busi, gid)).toEqual(["TransOutTry:try:01", "TransInTry:try:02", "TransInConfirm:confirm:02", "TransOutConfirm:confirm:01"]);
    const firstTry = busi.calls({ gid })[0];
    expect(firstTry).toMatchObject({ method: "POST", transType: "tcc", body: '{"amount":30}' });
    expect(firstTry?.query["dtm"]).toBe(env.http.server);
    expect(firstTry?.headers["x-trace"]).toBe("abc");
    expect(busi.calls({ gid, name: "TransInConfirm" })[0]?.body).toBe('{"amount":30}');
    expect(await env.dtx.client.status(gid)).toBe("succeed");
  });

  it("a Try answering FAILURE aborts with the rollback reason; the coordinator cancels every registered branch", async () => {
    const gid = gidFor("tcc-try-fails");
    busi.program({ gid, name: "TransInTry" }, "FAILURE");
    const err = await tccGlobalTransaction(env.http, gid, async (tcc) => {
      await tcc.callBranch({ amount: 30 }, busi.url("TransOutTry"), busi.url("TransOutConfirm"), busi.url("TransOutCancel"));
      await tcc.callBranch({ amount: 30 }, busi.url("TransInTry"), busi.url("TransInConfirm"), busi.url("TransInCancel"));
    }, { waitResult: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxFailure);
    expect(tries(busi, gid)).toEqual(["TransOutTry:try:01", "TransInTry:try:02", "TransInCancel:cancel:02", "TransOutCancel:cancel:01"]);
    const q = await env.http.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toBe("busi failure");
  });

  it("any error in the function aborts too, and the original error is rethrown", async () => {
    const gid = gidFor("tcc-throws");
    await expect(
      tccGlobalTransaction(env.http, gid, async (tcc) => {
        await tcc.callBranch({}, busi.url("TransOutTry"), busi.url("TransOutConfirm"), busi.url("TransOutCancel"));
        throw new Error("the application changed its mind");
      }, { waitResult: true }),
    ).rejects.toThrow("the application changed its mind");
    const q = await env.http.query(gid);
    expect(q.transaction).toMatchObject({ status: "failed", rollback_reason: "the application changed its mind" });
    expect(busi.calls({ gid, name: "TransOutCancel" })).toHaveLength(1);
  });

  it("a Try answering ONGOING throws DtxOngoing (and aborts)", async () => {
    const gid = gidFor("tcc-ongoing");
    busi.program({ gid, name: "TransOutTry" }, "ONGOING");
    const err = await tccGlobalTransaction(env.http, gid, async (tcc) => {
      await tcc.callBranch({}, busi.url("TransOutTry"), busi.url("TransOutConfirm"), busi.url("TransOutCancel"));
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DtxOngoing);
    await env.dtx.client.settle();
    expect(await env.dtx.client.status(gid)).toBe("failed");
  });

  it("a nested TCC in a Try handler numbers its branches under the Try's branch id", async () => {
    const gid = gidFor("tcc-nested");
    await tccGlobalTransaction(env.http, gid, async (tcc) => {
      const res = await tcc.callBranch({ amount: 5 }, `${rm.baseUrl}/tcc/NestedTry`, busi.url("OuterConfirm"), busi.url("OuterCancel"));
      expect(res.json()).toEqual({ nested: "01", inner: 200 });
    }, { waitResult: true });
    expect(tries(busi, gid)).toEqual(["InnerTry:try:0101", "InnerConfirm:confirm:0101", "OuterConfirm:confirm:01"]);
    expect(busi.calls({ gid, name: "InnerTry" })[0]?.body).toBe('{"amount":5}');
  });

  it("prepare of a gid that already finished is FAILURE and nothing runs", async () => {
    const gid = gidFor("tcc-reuse");
    await tccGlobalTransaction(env.http, gid, async () => undefined, { waitResult: true });
    let ran = false;
    await expect(tccGlobalTransaction(env.http, gid, async () => {
      ran = true;
    })).rejects.toMatchObject({ code: "FAILURE" });
    expect(ran).toBe(false);
  });
});
