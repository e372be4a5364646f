import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
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

function msgBody(gid: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    gid,
    trans_type: "msg",
    steps: [{ action: busi.url("TransOut") }, { action: busi.url("TransIn") }],
    payloads: ['{"amount":30}', '{"amount":30}'],
    query_prepared: busi.url("QueryPrepared"),
    ...extra,
  };
}

describe("two-phase message", () => {
  it("prepare then submit calls every branch in order", async () => {
    const gid = "msg-success";
    expect((await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid))).status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("prepared");
    expect(await dtx.client.branchStatuses(gid)).toEqual(["prepared", "prepared"]);
    expect(busi.calls({ gid })).toHaveLength(0);
    const r = await dtx.client.submit(msgBody(gid, { wait_result: true }));
    expect(r.status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["TransOut", "TransIn"]);
  });

  it("a second prepare is a no-op; prepare after submit is 409", async () => {
    const gid = "msg-prepare-twice";
    expect((await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid))).status).toBe(200);
    expect((await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid))).status).toBe(200);
    expect((await dtx.client.submit(msgBody(gid, { wait_result: true }))).status).toBe(200);
    const again = await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid));
    expect(again.status).toBe(409);
    expect(again.text).toContain("cannot prepare");
  });

  it("retries a branch error with backoff and never rolls back, even on FAILURE", async () => {
    const gid = "msg-retry";
    busi.program({ gid, name: "TransIn" }, "FAILURE", "ERROR");
    const r = await dtx.client.submit(msgBody(gid, { wait_result: true }));
    expect(r.status).toBe(425);
    // The branch's FAILURE is quoted, but not as the word dtm's clients search for.
    expect(r.text).not.toContain("FAILURE");
    expect(r.text.toLowerCase()).toContain("failure");
    expect(await dtx.client.status(gid)).toBe("submitted");
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("submitted");
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid, name: "TransOut" })).toHaveLength(1);
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(3);
  });

  it("D11: a branch answering ONGOING leaves the msg submitted: a wait_result submit answers 425 (dtm: 409), and it is delivered later", async () => {
    const gid = "msg-wait-ongoing";
    busi.program({ gid, name: "TransIn" }, "ONGOING");
    const r = await dtx.client.submit(msgBody(gid, { wait_result: true }));
    expect(r.status).toBe(425);
    expect(r.body).toMatchObject({ dtm_result: "ONGOING", code: "ONGOING" });
    expect(r.text).not.toContain("FAILURE");
    expect(await dtx.client.status(gid)).toBe("submitted");
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["TransOut", "TransIn", "TransIn"]);
  });

  it("D11: a delayed msg submitted with wait_result answers 425: it is stored, not yet delivered", async () => {
    const gid = "msg-wait-delay";
    const r = await dtx.client.submit(msgBody(gid, { wait_result: true, custom_data: JSON.stringify({ delay: 5 }) }));
    expect(r.status).toBe(425);
    expect(r.body).toMatchObject({ dtm_result: "ONGOING", code: "ONGOING" });
    expect(busi.calls({ gid })).toHaveLength(0);
    await dtx.client.cron(5500);
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("calls every branch at once when concurrent", async () => {
    const gid = "msg-concurrent";
    busi.program({ gid, name: "TransOut" }, "ERROR");
    await dtx.client.submit(msgBody(gid, { wait_result: true, concurrent: true }));
    // TransIn was called in the same pass although TransOut failed.
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(1);
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(1);
  });

  describe("check-back of a prepared message whose sender went quiet", () => {
    it("SUCCESS submits it", async () => {
      const gid = "msg-checkback-success";
      await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid, { timeout_to_fail: 2 }));
      await dtx.client.cron(1000);
      expect(busi.calls({ gid, name: "QueryPrepared" })).toHaveLength(0);
      await dtx.client.cron(2000);
      const [check] = busi.calls({ gid, name: "QueryPrepared" });
      expect(check).toMatchObject({ method: "GET", branchId: "00", op: "msg", transType: "msg" });
      expect(await dtx.client.status(gid)).toBe("succeed");
      expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["QueryPrepared", "TransOut", "TransIn"]);
    });

    it("FAILURE fails it without calling any branch", async () => {
      const gid = "msg-checkback-failure";
      busi.program({ gid, name: "QueryPrepared" }, "FAILURE");
      await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid, { timeout_to_fail: 2 }));
      await dtx.client.cron(3000);
      expect(await dtx.client.status(gid)).toBe("failed");
      expect(await dtx.client.branchStatuses(gid)).toEqual(["prepared", "prepared"]);
      expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["QueryPrepared"]);
    });

    it("ONGOING and errors retry the check-back later", async () => {
      const gid = "msg-checkback-ongoing";
      busi.program({ gid, name: "QueryPrepared" }, "ONGOING", "ERROR");
      await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid, { timeout_to_fail: 2 }));
      await dtx.client.cron(3000);
      expect(await dtx.client.status(gid)).toBe("prepared");
      await dtx.client.cron(60_000);
      expect(await dtx.client.status(gid)).toBe("prepared");
      expect((await dtx.client.query(gid)).transaction?.next_cron_interval).toBe(2);
      await dtx.client.cron(60_000);
      expect(await dtx.client.status(gid)).toBe("succeed");
      expect(busi.calls({ gid, name: "QueryPrepared" })).toHaveLength(3);
    });
  });

  it("abort fails a prepared message; abort of a submitted one is 409", async () => {
    const gid = "msg-abort";
    await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody(gid));
    expect((await dtx.client.call("POST", "/api/dtmsvr/abort", { gid, trans_type: "msg" })).status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("failed");
    expect((await dtx.client.submit(msgBody(gid))).status).toBe(409);
    const gid2 = "msg-abort-submitted";
    await dtx.client.submit(msgBody(gid2, { wait_result: true }));
    expect((await dtx.client.call("POST", "/api/dtmsvr/abort", { gid: gid2, trans_type: "msg" })).status).toBe(409);
  });

  it("delay holds the branches until the delay has passed", async () => {
    const gid = "msg-delay";
    const r = await dtx.client.submit(msgBody(gid, { custom_data: JSON.stringify({ delay: 5 }) }));
    expect(r.status).toBe(200);
    await dtx.client.cron(4000);
    expect(busi.calls({ gid })).toHaveLength(0);
    await dtx.client.cron(1500);
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["TransOut", "TransIn"]);
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("prepare requires a query_prepared URL", async () => {
    const r = await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody("msg-no-qp", { query_prepared: "" }));
    expect(r.status).toBe(400);
    const bad = await dtx.client.call("POST", "/api/dtmsvr/prepare", msgBody("msg-bad-qp", { query_prepared: "ftp://x" }));
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: "INVALID_URL" });
    expect((await dtx.client.query("msg-bad-qp")).transaction).toBeNull();
  });
});

describe("topics", () => {
  const sub = (topic: string, url: string): Promise<{ status: number; body: Record<string, unknown> }> =>
    dtx.client.call("GET", `/api/dtmsvr/subscribe?topic=${topic}&url=${encodeURIComponent(url)}&remark=r`);

  it("fans a msg step out to every subscriber", async () => {
    for (const name of ["SubA", "SubB", "SubC"]) expect((await sub("orders", busi.url(name))).status).toBe(200);
    const gid = "msg-topic";
    const r = await dtx.client.submit({ gid, trans_type: "msg", steps: [{ action: "topic://orders" }], payloads: ['{"order":1}'], wait_result: true });
    expect(r.status).toBe(200);
    const q = await dtx.client.query(gid);
    expect(q.branches.map((b) => b.branch_id)).toEqual(["01-01", "01-02", "01-03"]);
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["SubA", "SubB", "SubC"]);
    for (const c of busi.calls({ gid })) expect(c.body).toBe('{"order":1}');
  });

  it("manages subscribers with versioned KV and clear errors", async () => {
    expect((await sub("inv", busi.url("X"))).status).toBe(200);
    const dup = await sub("inv", busi.url("X"));
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ code: "TOPIC_SUBSCRIBER_EXISTS" });
    expect((await sub("inv", busi.url("Y"))).status).toBe(200);
    const kv = await dtx.client.call<{ kv: { k: string; v: string; version: number }[] }>("GET", "/api/dtmsvr/queryKV?cat=topics&key=inv");
    expect(kv.body.kv[0]?.version).toBe(2);
    expect(JSON.parse(kv.body.kv[0]?.v ?? "[]")).toEqual([{ url: busi.url("X"), remark: "r" }, { url: busi.url("Y"), remark: "r" }]);
    expect((await dtx.client.call("GET", `/api/dtmsvr/unsubscribe?topic=inv&url=${encodeURIComponent(busi.url("X"))}`)).status).toBe(200);
    const missing = await dtx.client.call("GET", `/api/dtmsvr/unsubscribe?topic=inv&url=${encodeURIComponent(busi.url("X"))}`);
    expect(missing.body).toMatchObject({ code: "TOPIC_SUBSCRIBER_NOT_FOUND" });
    const scan = await dtx.client.call<{ kv: { k: string }[] }>("GET", "/api/dtmsvr/scanKV?cat=topics");
    expect(scan.body.kv.map((e) => e.k)).toContain("inv");
    expect((await dtx.client.call("DELETE", "/api/dtmsvr/topic/inv")).status).toBe(200);
    const gone = await dtx.client.call("DELETE", "/api/dtmsvr/topic/inv");
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({ code: "TOPIC_NOT_FOUND" });
  });

  it("a msg to a topic with no subscriber is a 400 naming the topic, and writes nothing", async () => {
    const gid = "msg-topic-empty";
    const r = await dtx.client.call("POST", "/api/dtmsvr/prepare", { gid, trans_type: "msg", steps: [{ action: "topic://nobody" }], payloads: ["{}"], query_prepared: busi.url("QueryPrepared") });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: "TOPIC_HAS_NO_SUBSCRIBERS" });
    expect(String(r.body["message"])).toContain("nobody");
    expect((await dtx.client.query(gid)).transaction).toBeNull();
  });
});
