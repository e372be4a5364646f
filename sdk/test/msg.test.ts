import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../../test/busi/index.ts";
import { startBusi } from "../../test/busi/index.ts";
import type { BranchInfo, MsgBarrierDb } from "../src/index.ts";
import { DtxClient, DtxError, DtxFailure, Msg } from "../src/index.ts";
import type { SdkEnv } from "./helpers.ts";
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

const status = (gid: string) => env.dtx.client.status(gid);

describe("Msg against the real coordinator", () => {
  it("submit delivers every action in order", async () => {
    const gid = gidFor("msg-ok");
    await new Msg(env.http, gid, { waitResult: true }).add(busi.url("TransOut"), { amount: 30 }).add(busi.url("TransIn"), "text").submit();
    expect(await status(gid)).toBe("succeed");
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.op}:${c.branchId}:${c.body}`)).toEqual(['TransOut:action:01:{"amount":30}', "TransIn:action:02:text"]);
  });

  it("a prepared msg whose application went away is settled by the check-back: SUCCESS submits it", async () => {
    const gid = gidFor("msg-check-ok");
    await new Msg(env.http, gid).add(busi.url("TransIn"), {}).prepare(busi.url("QueryPrepared"));
    expect(await status(gid)).toBe("prepared");
    await env.dtx.client.cron(60_000);
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.op}:${c.branchId}:${c.method}`)).toEqual(["QueryPrepared:msg:00:GET", "TransIn:action:01:POST"]);
    expect(await status(gid)).toBe("succeed");
  });

  it("the check-back answering FAILURE fails the msg; no action runs", async () => {
    const gid = gidFor("msg-check-fail");
    busi.program({ gid, name: "QueryPrepared" }, "FAILURE");
    await new Msg(env.http, gid).add(busi.url("TransIn"), {}).prepare(busi.url("QueryPrepared"));
    await env.dtx.client.cron(60_000);
    expect(await status(gid)).toBe("failed");
    expect(busi.calls({ gid, name: "TransIn" })).toHaveLength(0);
  });

  it("abort fails a prepared msg", async () => {
    const gid = gidFor("msg-abort");
    const msg = new Msg(env.http, gid).add(busi.url("TransIn"), {});
    await msg.prepare(busi.url("QueryPrepared"));
    await msg.abort();
    expect(await status(gid)).toBe("failed");
    await expect(msg.submit()).rejects.toBeInstanceOf(DtxFailure);
  });

  it("setDelay holds the first delivery back until the delay passed", async () => {
    const gid = gidFor("msg-delay");
    await new Msg(env.http, gid).add(busi.url("TransIn"), {}).setDelay(30).submit();
    await env.dtx.client.settle();
    expect(busi.calls({ gid })).toHaveLength(0);
    const q = await env.http.query(gid);
    expect(q.transaction?.custom_data).toBe('{"delay":30}');
    await env.dtx.client.cron(31_000);
    expect(busi.calls({ gid })).toHaveLength(1);
    expect(await status(gid)).toBe("succeed");
  });

  it("addTopic fans out to the topic's subscribers", async () => {
    const topic = gidFor("topic");
    for (const name of ["SubA", "SubB"]) {
      const r = await env.dtx.client.call("GET", `/api/dtmsvr/subscribe?topic=${topic}&url=${encodeURIComponent(busi.url(name))}&remark=x`);
      expect(r.status).toBe(200);
    }
    // The coordinator reloads its topic map on a timer; a fresh subscription is seen by the next prepare that misses it.
    const gid = gidFor("msg-topic");
    const send = () => new Msg(env.http, gid, { waitResult: true }).addTopic(topic, { n: 1 }).submit();
    await send().catch(async (e: unknown) => {
      expect(e).toBeInstanceOf(DtxError);
      await env.dtx.client.cron(10_000);
      await send();
    });
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.branchId}`).sort()).toEqual(["SubA:01-01", "SubB:01-02"]);
  });
});

describe("Msg.doAndSubmit", () => {
  it("submits when the local transaction succeeds", async () => {
    const gid = gidFor("das-ok");
    let ran = 0;
    await new Msg(env.http, gid, { waitResult: true }).add(busi.url("TransIn"), {}).doAndSubmit(busi.url("QueryPrepared"), async () => {
      ran += 1;
      expect(await status(gid)).toBe("prepared");
    });
    expect(ran).toBe(1);
    expect(await status(gid)).toBe("succeed");
    expect(busi.calls({ gid, name: "QueryPrepared" })).toHaveLength(0);
  });

  it("aborts and rethrows when the local transaction throws FAILURE, without a check-back", async () => {
    const gid = gidFor("das-fail");
    const err = await new Msg(env.http, gid).add(busi.url("TransIn"), {}).doAndSubmit(busi.url("QueryPrepared"), async () => {
      throw new DtxFailure("insufficient balance");
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "FAILURE", message: "insufficient balance" });
    expect(await status(gid)).toBe("failed");
    expect(busi.calls({ gid })).toHaveLength(0);
  });

  it("on another error asks the check-back itself: SUCCESS submits (the local commit happened), and the error is rethrown", async () => {
    const gid = gidFor("das-err-commit");
    const err = await new Msg(env.http, gid, { waitResult: true }).add(busi.url("TransIn"), {}).doAndSubmit(busi.url("QueryPrepared"), async () => {
      throw new Error("connection reset after commit");
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe("connection reset after commit");
    const check = busi.calls({ gid, name: "QueryPrepared" });
    expect(check.map((c) => `${c.method}:${c.op}:${c.branchId}:${c.transType}`)).toEqual(["GET:msg:00:msg"]);
    expect(check[0]?.query["dtm"]).toBe(env.http.server);
    expect(await status(gid)).toBe("succeed");
  });

  it("on another error with a check-back FAILURE, aborts", async () => {
    const gid = gidFor("das-err-rollback");
    busi.program({ gid, name: "QueryPrepared" }, "FAILURE");
    await expect(new Msg(env.http, gid).add(busi.url("TransIn"), {}).doAndSubmit(busi.url("QueryPrepared"), async () => {
      throw new Error("lost");
    })).rejects.toThrow("lost");
    expect(await status(gid)).toBe("failed");
  });

  it("on another error with a check-back that errors, leaves the msg prepared for the coordinator's check-back", async () => {
    const gid = gidFor("das-err-unknown");
    busi.program({ gid, name: "QueryPrepared" }, "ERROR");
    await expect(new Msg(env.http, gid).add(busi.url("TransIn"), {}).doAndSubmit(busi.url("QueryPrepared"), async () => {
      throw new Error("lost");
    })).rejects.toThrow("lost");
    expect(await status(gid)).toBe("prepared");
    await env.dtx.client.cron(60_000);
    expect(await status(gid)).toBe("succeed");
  });

  it("doAndSubmitDB runs the business through the barrier hook with the msg barrier identity", async () => {
    const gid = gidFor("das-db");
    const seen: BranchInfo[] = [];
    const db: MsgBarrierDb<string> = {
      async callMsgBarrier(barrier, busiFn) {
        seen.push(barrier);
        await busiFn("tx-handle");
      },
    };
    let tx = "";
    await new Msg(env.http, gid, { waitResult: true }).add(busi.url("TransIn"), {}).doAndSubmitDB(busi.url("QueryPrepared"), db, async (t) => {
      tx = t;
    });
    expect(seen).toEqual([{ transType: "msg", gid, branchId: "00", op: "msg" }]);
    expect(tx).toBe("tx-handle");
    expect(await status(gid)).toBe("succeed");
  });
});

describe("Msg wire format", () => {
  it("prepare carries query_prepared; submit adds custom_data delay; abort names the msg", async () => {
    const capture = await startCaptureServer();
    try {
      const msg = new Msg(new DtxClient({ server: capture.url }), "m1").add("http://h/TransIn", { amount: 30 }).setDelay(10);
      await msg.prepare("http://h/QueryPrepared");
      await msg.submit();
      await msg.abort();
      expect(capture.requests.map((r) => r.path)).toEqual(["/api/dtmsvr/prepare", "/api/dtmsvr/submit", "/api/dtmsvr/abort"]);
      expect(capture.requests[0]?.body).toBe(
        '{"gid":"m1","trans_type":"msg","steps":[{"action":"http://h/TransIn"}],"payloads":["{\\"amount\\":30}"],"query_prepared":"http://h/QueryPrepared","protocol":"","concurrent":false}',
      );
      expect(capture.requests[1]?.body).toBe(
        '{"gid":"m1","trans_type":"msg","custom_data":"{\\"delay\\":10}","steps":[{"action":"http://h/TransIn"}],"payloads":["{\\"amount\\":30}"],"query_prepared":"http://h/QueryPrepared","protocol":"","concurrent":false}',
      );
    } finally {
      await capture.close();
    }
  });
});
