import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startBusi, type Busi, type BusiCall, type Outcome } from "../busi/index.ts";

let busi: Busi;

beforeEach(async () => {
  busi = await startBusi();
});

afterEach(async () => {
  await busi.close();
});

interface CallOpts {
  gid?: string;
  branchId?: string;
  op?: string;
  body?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** Call a busi endpoint the way the coordinator does: POST with a body, GET without. */
async function call(name: string, o: CallOpts = {}): Promise<{ status: number; body: string }> {
  const q = new URLSearchParams({
    gid: o.gid ?? "g1",
    trans_type: "saga",
    branch_id: o.branchId ?? "01",
    op: o.op ?? "action",
  });
  const init: RequestInit = {
    method: o.body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json", ...o.headers },
  };
  if (o.body !== undefined) init.body = o.body;
  if (o.signal !== undefined) init.signal = o.signal;
  const res = await fetch(`${busi.url(name)}?${q.toString()}`, init);
  return { status: res.status, body: await res.text() };
}

describe("busi", () => {
  it("answers SUCCESS by default and records the call", async () => {
    expect(busi.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/busi$/);
    expect(busi.url("TransOut")).toBe(`${busi.baseUrl}/TransOut`);

    const res = await call("TransOut", { body: '{"amount": 30}', headers: { "X-Test": "yes" } });
    expect(res).toEqual({ status: 200, body: '{"dtm_result":"SUCCESS"}' });

    const [c] = busi.calls();
    expect(c).toMatchObject({
      seq: 1,
      name: "TransOut",
      method: "POST",
      gid: "g1",
      transType: "saga",
      branchId: "01",
      op: "action",
      query: { gid: "g1", trans_type: "saga", branch_id: "01", op: "action" },
      body: '{"amount": 30}',
      outcome: "SUCCESS",
    } satisfies Partial<BusiCall>);
    expect(c?.headers["content-type"]).toBe("application/json");
    expect(c?.headers["x-test"]).toBe("yes");
  });

  it("records GET calls with an empty body and keeps non-JSON bodies raw", async () => {
    await call("QueryPrepared");
    await call("TransIn", { body: "not json", headers: { "Content-Type": "text/plain" } });
    await call("TransIn", { body: "", op: "compensate" });
    expect(busi.calls().map((c) => [c.method, c.body])).toEqual([
      ["GET", ""],
      ["POST", "not json"],
      ["POST", ""],
    ]);
  });

  it("consumes a programmed queue in order, then falls back to the default", async () => {
    busi.program({ name: "TransIn" }, "ERROR", "ONGOING", "FAILURE");
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await call("TransIn", { body: "{}" })).status);
    expect(statuses).toEqual([500, 425, 409, 200]);
    expect(busi.calls().map((c) => c.outcome)).toEqual(["ERROR", "ONGOING", "FAILURE", "SUCCESS"]);
  });

  it("matches by gid and op, and later rules win", async () => {
    busi.programAlways({ op: "compensate" }, "ERROR");
    busi.program({ gid: "g2", op: "compensate" }, "FAILURE");
    busi.setDefault("ONGOING");

    expect((await call("TransOut", { gid: "g1", op: "compensate", body: "{}" })).status).toBe(500);
    expect((await call("TransOut", { gid: "g2", op: "compensate", body: "{}" })).status).toBe(409);
    // The g2 queue is used up: the older sticky rule applies again.
    expect((await call("TransOut", { gid: "g2", op: "compensate", body: "{}" })).status).toBe(500);
    expect((await call("TransOut", { gid: "g2", op: "action", body: "{}" })).status).toBe(425);

    expect(busi.calls({ gid: "g2" })).toHaveLength(3);
    expect(busi.calls({ gid: "g2", op: "action" }).map((c) => c.outcome)).toEqual(["ONGOING"]);

    busi.reset();
    expect(busi.calls()).toEqual([]);
    expect((await call("TransOut", { op: "compensate", body: "{}" })).status).toBe(200);
    expect(busi.calls()[0]?.seq).toBe(1);
  });

  it.each<[Outcome, number, string]>([
    ["SUCCESS", 200, '{"dtm_result":"SUCCESS"}'],
    ["FAILURE", 409, '{"dtm_result":"FAILURE","message":"busi failure"}'],
    ["ONGOING", 425, '{"dtm_result":"ONGOING"}'],
    ["ERROR", 500, '{"message":"busi error"}'],
    ["LEGACY_FAILURE", 200, '{"dtm_result":"FAILURE"}'],
    ["LEGACY_ONGOING", 200, '{"dtm_result":"ONGOING"}'],
  ])("answers %s with %i %s", async (outcome, status, body) => {
    busi.program({ branchId: "07" }, outcome);
    expect(await call("TransOut", { branchId: "07", body: "{}" })).toEqual({ status, body });
  });

  it("waitForCalls resolves once enough matching calls arrived", async () => {
    const waiting = busi.waitForCalls({ name: "TransIn" }, 2);
    const seen: string[] = [];
    const unsubscribe = busi.onCall((c) => seen.push(`${c.seq}:${c.name}`));
    await call("TransOut", { body: "{}" });
    await call("TransIn", { body: "{}" });
    unsubscribe();
    await call("TransIn", { body: "{}" });
    const got = await waiting;
    expect(got.map((c) => c.seq)).toEqual([2, 3]);
    expect(seen).toEqual(["1:TransOut", "2:TransIn"]);
    // Already satisfied: resolves at once.
    await expect(busi.waitForCalls({ name: "TransOut" }, 1)).resolves.toHaveLength(1);
  });

  it("waitForCalls rejects on timeout, listing the calls seen", async () => {
    await call("TransOut", { gid: "gx", body: "{}" });
    await expect(busi.waitForCalls({ name: "TransIn" }, 1, 200)).rejects.toThrow(
      /timed out after 200 ms.*"name":"TransIn".*0 matched, 1 seen:\n\s+#1 POST TransOut gid=gx/s,
    );
  });

  it("holds HANG requests until releaseHung", async () => {
    busi.program({ name: "TransOut" }, "HANG");
    const hung = call("TransOut", { body: "{}" });
    await busi.waitForCalls({ name: "TransOut" }, 1);
    // Other calls are still served while one hangs.
    expect((await call("TransIn", { body: "{}" })).status).toBe(200);
    busi.releaseHung();
    expect((await hung).status).toBe(500);
    expect(busi.calls({ name: "TransOut" })[0]?.outcome).toBe("HANG");
  });

  it("lets a caller give up on a HANG request", async () => {
    busi.setDefault("HANG");
    const abort = new AbortController();
    const hung = call("TransOut", { body: "{}", signal: abort.signal });
    await busi.waitForCalls({}, 1);
    abort.abort();
    await expect(hung).rejects.toThrow();
  });

  it("close() answers hung requests and does not hang", async () => {
    busi.setDefault("HANG");
    const hung = call("TransOut", { body: "{}" });
    await busi.waitForCalls({}, 1);
    const pending = expect(busi.waitForCalls({ name: "Never" }, 1)).rejects.toThrow(/busi closed/);
    await busi.close();
    expect((await hung).status).toBe(500);
    await pending;
    await busi.close(); // idempotent
  });
});
