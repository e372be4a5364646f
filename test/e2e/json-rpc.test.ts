/**
 * JSON-RPC 2.0, both directions:
 * - the API an application calls, POST /api/json-rpc (docs/protocol.md#json-rpc-api): dtm's methods and error codes,
 *   plus dtx's -32602 with a stable `data.code` for a client mistake;
 * - the branch protocol the coordinator calls participants with when a trans has
 *   `protocol: "json-rpc"` and its URLs carry `?method=` (docs/protocol.md#json-rpc-branch-calls).
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

interface RpcReply {
  jsonrpc: string;
  id: string | null;
  result: unknown;
  error: { code: number; message: string; data?: { code: string } } | null;
}

/** A participant that answers JSON-RPC: per method, a queue of answers, then `ok`. */
type RpcAnswer = "ok" | "failure" | "ongoing" | "internal" | "success-mentions-ongoing" | "ongoing-mentions-failure";

interface RpcCall {
  seq: number;
  path: string;
  query: Record<string, string>;
  contentType: string;
  body: { id?: unknown; jsonrpc?: unknown; method?: string; params?: Record<string, unknown> };
  answer: RpcAnswer;
}

class RpcParticipant {
  readonly calls: RpcCall[] = [];
  private readonly queues = new Map<string, RpcAnswer[]>();
  private server: Server | undefined;
  private base = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ message: String(error) }));
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.base = `http://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  url(path: string, method: string): string {
    return `${this.base}/rpc/${path}?method=${method}`;
  }

  program(method: string, ...answers: RpcAnswer[]): void {
    this.queues.set(method, [...(this.queues.get(method) ?? []), ...answers]);
  }

  reset(): void {
    this.calls.length = 0;
    this.queues.clear();
  }

  callsFor(gid: string): RpcCall[] {
    return this.calls.filter((c) => c.body.params?.["gid"] === gid);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as RpcCall["body"];
    const url = new URL(req.url ?? "/", "http://rpc");
    const method = body.method ?? "";
    const answer = this.queues.get(method)?.shift() ?? "ok";
    this.calls.push({
      seq: this.calls.length + 1,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers["content-type"] ?? "",
      body,
      answer,
    });
    // Messages avoid the words FAILURE / ONGOING so that only the JSON-RPC error code decides.
    const error =
      answer === "failure" ? { code: -32901, message: "insufficient balance" }
      : answer === "ongoing" ? { code: -32902, message: "still processing" }
      : answer === "internal" ? { code: -32603, message: "database down" }
      : null;
    // docs/deviations.md D9: dtm_result decides before the words; these two mention the other outcome on purpose.
    const reply =
      answer === "success-mentions-ongoing" ? { jsonrpc: "2.0", id: body.id, result: { dtm_result: "SUCCESS", note: "was ONGOING before" }, error: null }
      : answer === "ongoing-mentions-failure" ? { jsonrpc: "2.0", id: body.id, error: { code: -32902, message: "no FAILURE yet" } }
      : error ? { jsonrpc: "2.0", id: body.id, error } : { jsonrpc: "2.0", id: body.id, result: { done: true }, error: null };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(reply));
  }
}

let dtx: TestCoordinator;
let busi: Busi;
const rpc = new RpcParticipant();

beforeAll(async () => {
  busi = await startBusi();
  await rpc.start();
  dtx = await startCoordinator();
});
afterAll(async () => {
  await dtx?.stop();
  await busi?.close();
  await rpc.close();
});
beforeEach(() => {
  busi.reset();
  rpc.reset();
});

const rpcCall = (body: unknown) => dtx.client.call<RpcReply>("POST", "/api/json-rpc", body);
const invoke = (id: string, method: string, params?: unknown) => rpcCall({ jsonrpc: "2.0", id, method, params });

describe("POST /api/json-rpc (the API)", () => {
  it("newGid answers {gid}", async () => {
    const r = await invoke("req-1", "newGid");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ error: null, id: "req-1", jsonrpc: "2.0", result: { gid: expect.stringMatching(/^[A-Za-z0-9]{22}$/) } });
    const again = await invoke("req-2", "newGid");
    expect((again.body.result as { gid: string }).gid).not.toBe((r.body.result as { gid: string }).gid);
  });

  it("prepare, registerBranch and submit of a TCC answer result null, error null, and confirm it", async () => {
    const gid = ((await invoke("g", "newGid")).body.result as { gid: string }).gid;
    const ok = { error: null, jsonrpc: "2.0", result: null };
    expect((await invoke("p", "prepare", { gid, trans_type: "tcc" })).body).toEqual({ ...ok, id: "p" });
    for (const i of [1, 2]) {
      const reg = await invoke(`r${i}`, "registerBranch", {
        gid, trans_type: "tcc", branch_id: `0${i}`, data: `{"n":${i}}`, confirm: busi.url(`Confirm${i}`), cancel: busi.url(`Cancel${i}`),
      });
      expect(reg.status).toBe(200);
      expect(reg.body).toEqual({ ...ok, id: `r${i}` });
    }
    expect(await dtx.client.status(gid)).toBe("prepared");
    const sub = await invoke("s", "submit", { gid, trans_type: "tcc", wait_result: true });
    expect(sub.status).toBe(200);
    expect(sub.body).toEqual({ ...ok, id: "s" });
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid }).map((c) => `${c.name}:${c.op}`)).toEqual(["Confirm2:confirm", "Confirm1:confirm"]);
  });

  it("abort of a prepared TCC answers null and cancels it", async () => {
    const gid = "rpc-abort";
    expect((await invoke("p", "prepare", { gid, trans_type: "tcc" })).body.error).toBeNull();
    await invoke("r", "registerBranch", { gid, trans_type: "tcc", branch_id: "01", data: "{}", confirm: busi.url("Confirm"), cancel: busi.url("Cancel") });
    const r = await invoke("a", "abort", { gid, trans_type: "tcc", rollback_reason: "try failed" });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ error: null, id: "a", jsonrpc: "2.0", result: null });
    await dtx.client.settle();
    expect((await dtx.client.query(gid)).transaction).toMatchObject({ status: "failed", rollback_reason: "try failed" });
    expect(busi.calls({ gid }).map((c) => c.name)).toEqual(["Cancel"]);
  });

  it("prepare and submit of a msg work too", async () => {
    const gid = "rpc-msg";
    const msg = { gid, trans_type: "msg", steps: [{ action: busi.url("TransIn") }], payloads: ["{}"], query_prepared: busi.url("QueryPrepared") };
    expect((await invoke("p", "prepare", msg)).body.error).toBeNull();
    expect(await dtx.client.status(gid)).toBe("prepared");
    expect((await invoke("s", "submit", { ...msg, wait_result: true })).body.error).toBeNull();
    expect(await dtx.client.status(gid)).toBe("succeed");
  });

  it("-32700: a body that is not JSON, or a numeric id, is HTTP 400", async () => {
    const bad = await rpcCall("{not json");
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32700, message: expect.stringContaining("Parse json error") } });
    const numeric = await rpcCall({ jsonrpc: "2.0", id: 7, method: "newGid" });
    expect(numeric.status).toBe(400);
    expect(numeric.body.error?.code).toBe(-32700);
    const noId = await rpcCall({ jsonrpc: "2.0", method: "newGid" });
    expect(noId.status).toBe(400);
    expect(noId.body.error?.code).toBe(-32700);
  });

  it("-32600: jsonrpc other than 2.0, or an empty id", async () => {
    for (const body of [{ jsonrpc: "1.0", id: "x", method: "newGid" }, { id: "x", method: "newGid" }, { jsonrpc: "2.0", id: "", method: "newGid" }]) {
      const r = await rpcCall(body);
      expect(r.status, JSON.stringify(body)).toBe(200);
      expect(r.body.error, JSON.stringify(body)).toMatchObject({ code: -32600, message: expect.stringContaining("Bad json request") });
      expect(r.body.result).toBeNull();
    }
  });

  it("-32601: unknown method", async () => {
    for (const method of ["query", "prepareWorkflow", "forceStop", "", "NEWGID"]) {
      const r = await invoke("m", method, {});
      expect(r.status, method).toBe(200);
      expect(r.body, method).toMatchObject({ id: "m", jsonrpc: "2.0", result: null, error: { code: -32601, message: `Method not found: ${method}` } });
    }
    const missing = await rpcCall({ jsonrpc: "2.0", id: "m" });
    expect(missing.body.error?.code).toBe(-32601);
  });

  it("-32601: names of Object.prototype members are unknown methods too", async () => {
    // Inherited members of a plain object must not count as methods (a lookup without hasOwn once
    // answered "constructor" with success).
    for (const method of ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"]) {
      const r = await invoke("m", method, {});
      expect(r.status, method).toBe(200);
      expect(r.body, method).toMatchObject({ id: "m", jsonrpc: "2.0", error: { code: -32601, message: `Method not found: ${method}` } });
    }
  });

  it("-32901: a FAILURE result, e.g. submit of a finished saga", async () => {
    const gid = "rpc-finished-saga";
    expect((await dtx.client.submit(sagaBody(gid, (n) => busi.url(n), { wait_result: true }))).status).toBe(200);
    const r = await invoke("s", "submit", sagaBody(gid, (n) => busi.url(n)));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ id: "s", jsonrpc: "2.0", result: null, error: { code: -32901, message: expect.stringMatching(/cannot sumbmit\. FAILURE$/) } });
    expect(r.body.error?.data).toEqual({ code: "FAILURE" });
    const prepare = await invoke("p", "prepare", { gid, trans_type: "saga" });
    expect(prepare.body.error?.code).toBe(-32901);
    const abort = await invoke("a", "abort", { gid, trans_type: "saga" });
    expect(abort.body.error?.code).toBe(-32901);
    expect(busi.calls({ gid })).toHaveLength(2);
  });

  it("-32901 with data.code for every answer HTTP gives as 409: registerBranch on an unknown gid (dtm's FAILURE), a conflicting branch", async () => {
    const unknown = await invoke("m", "registerBranch", { gid: "rpc-nobody-tcc", trans_type: "tcc", branch_id: "01", confirm: busi.url("C"), cancel: busi.url("X") });
    expect(unknown.body.error).toMatchObject({ code: -32901, data: { code: "TRANS_NOT_PREPARED" }, message: expect.stringContaining("FAILURE") });
    const gid = "rpc-conflict";
    expect((await invoke("p", "prepare", { gid, trans_type: "tcc" })).body.error).toBeNull();
    const branch = { gid, trans_type: "tcc", branch_id: "01", confirm: busi.url("C"), cancel: busi.url("X") };
    expect((await invoke("r1", "registerBranch", branch)).body.error).toBeNull();
    const conflict = await invoke("r2", "registerBranch", { ...branch, confirm: busi.url("Other") });
    expect(conflict.body.error).toMatchObject({ code: -32901, data: { code: "BRANCH_CONFLICT" } });
    expect(await dtx.client.status("rpc-nobody-tcc")).toBeUndefined();
  });

  it("-32602 with data.code for a client mistake, writing nothing", async () => {
    const cases: { params: unknown; code: string }[] = [
      { params: { gid: "bad gid!", trans_type: "saga" }, code: "INVALID_GID" },
      { params: { gid: "rpc-mistake-1", trans_type: "nope" }, code: "INVALID_TRANS_TYPE" },
      { params: { gid: "rpc-mistake-2", trans_type: "saga", steps: [{ action: "ftp://x", compensate: "" }], payloads: [""] }, code: "INVALID_URL" },
      { params: undefined, code: "INVALID_REQUEST" },
      { params: ["gid"], code: "INVALID_REQUEST" },
    ];
    for (const { params, code } of cases) {
      const r = await invoke("m", "submit", params);
      expect(r.status, code).toBe(200);
      expect(r.body, code).toMatchObject({ id: "m", result: null, error: { code: -32602, data: { code } } });
    }
    const abort = await invoke("m", "abort", { gid: "rpc-nobody", trans_type: "tcc" });
    expect(abort.body.error).toMatchObject({ code: -32602, data: { code: "TRANS_NOT_FOUND" } });
    const workflow = await invoke("m", "prepare", { gid: "rpc-mistake-3", trans_type: "workflow" });
    expect(workflow.body.error).toMatchObject({ code: -32602, data: { code: "UNSUPPORTED_TRANS_TYPE" } });
    for (const gid of ["rpc-mistake-1", "rpc-mistake-2", "rpc-mistake-3", "rpc-nobody"]) expect(await dtx.client.status(gid), gid).toBeUndefined();
  });
});

describe("JSON-RPC branch calls (protocol json-rpc, URL with ?method=)", () => {
  function rpcSaga(gid: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      gid,
      trans_type: "saga",
      protocol: "json-rpc",
      steps: [
        { action: rpc.url("TransOut", "transOut"), compensate: rpc.url("TransOutRevert", "transOutRevert") },
        { action: rpc.url("TransIn", "transIn"), compensate: rpc.url("TransInRevert", "transInRevert") },
      ],
      payloads: ['{"amount":30,"user":"u1"}', '{"amount":30,"user":"u2"}'],
      ...extra,
    };
  }
  const methods = (gid: string): string[] => rpc.callsFor(gid).map((c) => `${c.body.method}:${c.answer}`);

  it("posts {id, jsonrpc, method, params: payload + gid, trans_type, branch_id, op} and succeeds", async () => {
    const gid = "rpc-branch-success";
    const r = await dtx.client.submit(rpcSaga(gid, { wait_result: true }));
    expect(r.status).toBe(200);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(methods(gid)).toEqual(["transOut:ok", "transIn:ok"]);
    const [first, second] = rpc.callsFor(gid);
    expect(first?.path).toBe("/rpc/TransOut");
    expect(first?.query).toEqual({ method: "transOut" });
    expect(first?.contentType).toBe("application/json");
    expect(first?.body).toEqual({
      id: expect.any(String),
      jsonrpc: "2.0",
      method: "transOut",
      params: { amount: 30, user: "u1", gid, trans_type: "saga", branch_id: "01", op: "action" },
    });
    expect(second?.body.params).toEqual({ amount: 30, user: "u2", gid, trans_type: "saga", branch_id: "02", op: "action" });
    expect(first?.body.id).not.toBe(second?.body.id);
    expect(await dtx.client.branchStatuses(gid)).toEqual(["prepared", "succeed", "prepared", "succeed"]);
  });

  it("error -32901 is a FAILURE: the saga compensates in reverse order and fails", async () => {
    const gid = "rpc-branch-failure";
    rpc.program("transIn", "failure");
    const r = await dtx.client.submit(rpcSaga(gid, { wait_result: true }));
    expect(r.status).toBe(409);
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("failed");
    expect(q.transaction?.rollback_reason).toContain("insufficient balance");
    expect(q.branches.map((b) => b.status)).toEqual(["succeed", "succeed", "succeed", "failed"]);
    expect(methods(gid)).toEqual(["transOut:ok", "transIn:failure", "transInRevert:ok", "transOutRevert:ok"]);
    expect(rpc.callsFor(gid)[2]?.body.params).toMatchObject({ branch_id: "02", op: "compensate" });
  });

  it("error -32902 is ONGOING: the branch is retried at the same interval, without compensation", async () => {
    const gid = "rpc-branch-ongoing";
    rpc.program("transOut", "ongoing", "ongoing");
    const r = await dtx.client.submit(rpcSaga(gid, { wait_result: true }));
    expect(r.status).toBe(425); // a saga still running is unfinished, not a failure (docs/deviations.md D11)
    expect(r.body).toMatchObject({ code: "ONGOING", dtm_result: "ONGOING" });
    expect(await dtx.client.status(gid)).toBe("submitted");
    await dtx.client.cron(60_000);
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("submitted");
    expect(q.transaction?.next_cron_interval).toBe(1); // ONGOING keeps the interval; no backoff
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(methods(gid)).toEqual(["transOut:ongoing", "transOut:ongoing", "transOut:ok", "transIn:ok"]);
  });

  it("D9: a result with dtm_result SUCCESS is a success even when it mentions ONGOING; -32902 is ONGOING even when it mentions FAILURE", async () => {
    const gid = "rpc-branch-d9";
    rpc.program("transOut", "success-mentions-ongoing");
    rpc.program("transIn", "ongoing-mentions-failure");
    const r = await dtx.client.submit(rpcSaga(gid, { wait_result: true }));
    expect(r.status).toBe(425);
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("submitted");
    expect(q.branches.map((b) => b.status)).toEqual(["prepared", "succeed", "prepared", "prepared"]);
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(methods(gid)).toEqual(["transOut:success-mentions-ongoing", "transIn:ongoing-mentions-failure", "transIn:ok"]);
  });

  it("any other JSON-RPC error is retried with backoff", async () => {
    const gid = "rpc-branch-error";
    rpc.program("transIn", "internal");
    expect((await dtx.client.submit(rpcSaga(gid, { wait_result: true }))).status).toBe(425);
    const q = await dtx.client.query(gid);
    expect(q.transaction?.status).toBe("submitted");
    expect(q.transaction?.next_cron_interval).toBe(2);
    await dtx.client.cron(60_000);
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(methods(gid)).toEqual(["transOut:ok", "transIn:internal", "transIn:ok"]);
  });

  it("a json-rpc trans calls a URL without ?method= over plain HTTP", async () => {
    const gid = "rpc-branch-plain-http";
    const r = await dtx.client.submit({
      gid, trans_type: "saga", protocol: "json-rpc", wait_result: true,
      steps: [{ action: busi.url("TransOut"), compensate: busi.url("TransOutRevert") }], payloads: ['{"amount":1}'],
    });
    expect(r.status).toBe(200);
    const [call] = busi.calls({ gid });
    expect(call).toMatchObject({ method: "POST", body: '{"amount":1}', branchId: "01", op: "action", transType: "saga" });
  });
});
