/**
 * Client mistakes on the msg / tcc / xa / workflow / topic routes (docs/deviations.md D1, D8;
 * docs/errors.md): each request is refused with an exact 4xx status and stable `code`, never a
 * 5xx, and writes nothing: every transaction, branch and topic is byte-for-byte the same after it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import type { ApiResponse, WireTrans } from "../helpers/client.ts";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

let dtx: TestCoordinator;
let busi: Busi;
/** Filled in beforeAll (the participant's port is not known when the table is built). */
const U = { ok: "", other: "", sub: "" };

const post = (path: string, body: unknown): Promise<ApiResponse> => dtx.client.call("POST", `/api/dtmsvr/${path}`, body);

async function ok(r: Promise<ApiResponse>): Promise<void> {
  const res = await r;
  expect(res.status, res.text).toBe(200);
}

beforeAll(async () => {
  busi = await startBusi();
  dtx = await startCoordinator();
  U.ok = busi.url("Ok");
  U.other = busi.url("Other");
  U.sub = busi.url("Sub1");
  const tccBranch = (gid: string) => ({ gid, trans_type: "tcc", branch_id: "01", data: "{}", confirm: U.ok, cancel: U.other });
  // Fixtures, one per state the cases need.
  await ok(post("prepare", { gid: "bi-tcc", trans_type: "tcc" }));
  await ok(post("registerBranch", tccBranch("bi-tcc")));
  await ok(post("prepare", { gid: "bi-xa", trans_type: "xa" }));
  await ok(post("prepare", { gid: "bi-msg", trans_type: "msg", steps: [{ action: U.ok }], payloads: ["{}"], query_prepared: U.ok }));
  await ok(post("prepareWorkflow", { gid: "bi-wf", trans_type: "workflow", query_prepared: U.ok }));
  await ok(post("prepareWorkflow", { gid: "bi-wf-done", trans_type: "workflow", query_prepared: U.ok }));
  await ok(post("submit", { gid: "bi-wf-done", trans_type: "workflow", req_extra: { status: "succeed" } }));
  await ok(post("prepare", { gid: "bi-tcc-done", trans_type: "tcc" }));
  await ok(post("submit", { gid: "bi-tcc-done", trans_type: "tcc", wait_result: true }));
  await ok(dtx.client.submit(sagaBody("bi-saga", (n) => busi.url(n), { wait_result: true })));
  await ok(dtx.client.call("GET", `/api/dtmsvr/subscribe?topic=bi-topic&url=${encodeURIComponent(U.sub)}`));
  // Dedicated victims for the type-confusion cases at the end, so a bug there cannot disturb the table.
  await ok(post("prepare", { gid: "bi-victim-tcc", trans_type: "tcc" }));
  await ok(post("registerBranch", tccBranch("bi-victim-tcc")));
  await ok(post("prepareWorkflow", { gid: "bi-victim-wf", trans_type: "workflow", query_prepared: U.ok }));
  await dtx.client.settle();
  expect(await dtx.client.status("bi-saga")).toBe("succeed");
  expect(await dtx.client.status("bi-tcc-done")).toBe("succeed");
});
afterAll(async () => {
  await dtx?.stop();
  await busi?.close();
});

/** Everything a request could write: every trans, its branches, the topics. */
async function snapshot(): Promise<string> {
  const all = await dtx.client.call<{ transactions: WireTrans[] | null }>("GET", "/api/dtmsvr/all?limit=1000");
  expect(all.status).toBe(200);
  const transactions = all.body.transactions ?? [];
  const branches = await Promise.all(transactions.map(async (t) => (await dtx.client.query(t.gid)).branches));
  const topics = await dtx.client.call("GET", "/api/dtmsvr/queryKV?cat=topics");
  return JSON.stringify({ transactions, branches, topics: topics.body });
}

type Body = Record<string, unknown> | unknown[] | string;

interface Case {
  name: string;
  method: "GET" | "POST" | "DELETE";
  /** Path under /api/dtmsvr; a function when it needs the participant URL. */
  path: string | (() => string);
  body?: Body | (() => Body);
  status: number;
  code: string;
}

const q = (s: string): string => encodeURIComponent(s);
const msg = (extra: Record<string, unknown>) => () => ({ gid: "bi-new-msg", trans_type: "msg", steps: [{ action: U.ok }], payloads: ["{}"], query_prepared: U.ok, ...extra });
const reg = (extra: Record<string, unknown>, drop: string[] = []) => () => {
  const body: Record<string, unknown> = { gid: "bi-tcc", trans_type: "tcc", branch_id: "02", data: "{}", confirm: U.ok, cancel: U.other, ...extra };
  for (const k of drop) delete body[k];
  return body;
};
const wfReg = (extra: Record<string, unknown>, drop: string[] = []) => () => {
  const body: Record<string, unknown> = { gid: "bi-wf", trans_type: "workflow", branch_id: "01", op: "action", status: "succeed", data: "r", ...extra };
  for (const k of drop) delete body[k];
  return body;
};
const xaReg = (extra: Record<string, unknown>, drop: string[] = []) => () => {
  const body: Record<string, unknown> = { gid: "bi-xa", trans_type: "xa", branch_id: "01", url: U.ok, ...extra };
  for (const k of drop) delete body[k];
  return body;
};
const wfPrepare = (extra: Record<string, unknown>) => () => ({ gid: "bi-new-wf", trans_type: "workflow", query_prepared: U.ok, ...extra });

const CASES: Case[] = [
  // prepare (msg)
  { name: "prepare msg without query_prepared", method: "POST", path: "prepare", body: msg({ query_prepared: undefined }), status: 400, code: "INVALID_REQUEST" },
  { name: "prepare msg with an empty query_prepared", method: "POST", path: "prepare", body: msg({ query_prepared: "" }), status: 400, code: "INVALID_REQUEST" },
  { name: "prepare msg with query_prepared 'not a url'", method: "POST", path: "prepare", body: msg({ query_prepared: "not a url" }), status: 400, code: "INVALID_URL" },
  { name: "prepare msg with query_prepared ftp://x", method: "POST", path: "prepare", body: msg({ query_prepared: "ftp://x" }), status: 400, code: "INVALID_URL" },
  { name: "prepare msg with query_prepared http://", method: "POST", path: "prepare", body: msg({ query_prepared: "http://" }), status: 400, code: "INVALID_URL" },
  { name: "prepare msg with query_prepared http://a b/", method: "POST", path: "prepare", body: msg({ query_prepared: "http://a b/" }), status: 400, code: "INVALID_URL" },
  { name: "prepare msg with query_prepared a number", method: "POST", path: "prepare", body: msg({ query_prepared: 42 }), status: 400, code: "INVALID_REQUEST" },
  { name: "prepare msg with a malformed action", method: "POST", path: "prepare", body: msg({ steps: [{ action: "http://x:99999/" }] }), status: 400, code: "INVALID_URL" },
  { name: "prepare msg with a topic nobody subscribes", method: "POST", path: "prepare", body: msg({ steps: [{ action: "topic://bi-nobody" }] }), status: 400, code: "TOPIC_HAS_NO_SUBSCRIBERS" },
  { name: "prepare of a workflow", method: "POST", path: "prepare", body: { gid: "bi-new-wf", trans_type: "workflow" }, status: 400, code: "UNSUPPORTED_TRANS_TYPE" },

  // registerBranch
  { name: "registerBranch without branch_id", method: "POST", path: "registerBranch", body: reg({}, ["branch_id"]), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch with an empty branch_id", method: "POST", path: "registerBranch", body: reg({ branch_id: "" }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch with branch_id 'a b'", method: "POST", path: "registerBranch", body: reg({ branch_id: "a b" }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch with a numeric branch_id", method: "POST", path: "registerBranch", body: reg({ branch_id: 2 }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch with a null branch_id", method: "POST", path: "registerBranch", body: reg({ branch_id: null }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch with a numeric data", method: "POST", path: "registerBranch", body: reg({ data: 123 }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch with an object confirm", method: "POST", path: "registerBranch", body: reg({ confirm: { url: "http://x/" } }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch with an unknown trans_type", method: "POST", path: "registerBranch", body: reg({ trans_type: "tcc2" }), status: 400, code: "INVALID_TRANS_TYPE" },
  { name: "registerBranch without trans_type", method: "POST", path: "registerBranch", body: reg({}, ["trans_type"]), status: 400, code: "INVALID_TRANS_TYPE" },
  { name: "registerBranch of a saga branch", method: "POST", path: "registerBranch", body: reg({ trans_type: "saga" }), status: 400, code: "UNSUPPORTED_TRANS_TYPE" },
  { name: "registerBranch of a msg branch", method: "POST", path: "registerBranch", body: reg({ gid: "bi-msg", trans_type: "msg" }), status: 400, code: "UNSUPPORTED_TRANS_TYPE" },
  { name: "registerBranch with a malformed confirm URL", method: "POST", path: "registerBranch", body: reg({ confirm: "nope" }), status: 400, code: "INVALID_URL" },
  { name: "registerBranch with a malformed cancel URL", method: "POST", path: "registerBranch", body: reg({ cancel: "ftp://x" }), status: 400, code: "INVALID_URL" },
  { name: "registerBranch of xa without url", method: "POST", path: "registerBranch", body: xaReg({}, ["url"]), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch of xa with url 'not a url'", method: "POST", path: "registerBranch", body: xaReg({ url: "not a url" }), status: 400, code: "INVALID_URL" },
  { name: "registerXaBranch with url http://x:99999/", method: "POST", path: "registerXaBranch", body: xaReg({ url: "http://x:99999/" }), status: 400, code: "INVALID_URL" },
  { name: "registerBranch of workflow without op", method: "POST", path: "registerBranch", body: wfReg({}, ["op"]), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch of workflow with op 'a b'", method: "POST", path: "registerBranch", body: wfReg({ op: "a b" }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch of workflow with a 46-character op", method: "POST", path: "registerBranch", body: wfReg({ op: "o".repeat(46) }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch of workflow without status", method: "POST", path: "registerBranch", body: wfReg({}, ["status"]), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch of workflow with status 'done'", method: "POST", path: "registerBranch", body: wfReg({ status: "done" }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch of workflow with status 'SUCCEED'", method: "POST", path: "registerBranch", body: wfReg({ status: "SUCCEED" }), status: 400, code: "INVALID_BRANCH" },
  { name: "registerBranch on a finished tcc", method: "POST", path: "registerBranch", body: reg({ gid: "bi-tcc-done" }), status: 409, code: "TRANS_NOT_PREPARED" },
  { name: "registerBranch on a finished workflow", method: "POST", path: "registerBranch", body: wfReg({ gid: "bi-wf-done" }), status: 409, code: "TRANS_NOT_PREPARED" },
  { name: "registerBranch on an unknown gid", method: "POST", path: "registerBranch", body: reg({ gid: "bi-nobody" }), status: 409, code: "TRANS_NOT_PREPARED" },
  { name: "registerBranch of tcc on an xa gid", method: "POST", path: "registerBranch", body: reg({ gid: "bi-xa" }), status: 400, code: "UNSUPPORTED_TRANS_TYPE" },
  { name: "registerBranch of tcc on a workflow gid", method: "POST", path: "registerBranch", body: reg({ gid: "bi-wf" }), status: 400, code: "UNSUPPORTED_TRANS_TYPE" },
  { name: "registerBranch of workflow on a tcc gid", method: "POST", path: "registerBranch", body: wfReg({ gid: "bi-tcc" }), status: 400, code: "UNSUPPORTED_TRANS_TYPE" },
  { name: "registerBranch of xa on a saga gid", method: "POST", path: "registerBranch", body: xaReg({ gid: "bi-saga" }), status: 400, code: "UNSUPPORTED_TRANS_TYPE" },
  { name: "registerBranch without gid", method: "POST", path: "registerBranch", body: reg({}, ["gid"]), status: 400, code: "INVALID_GID" },
  { name: "registerBranch with gid 'a;b'", method: "POST", path: "registerBranch", body: reg({ gid: "a;b" }), status: 400, code: "INVALID_GID" },
  { name: "registerBranch with an array body", method: "POST", path: "registerBranch", body: ["gid", "bi-tcc"], status: 400, code: "INVALID_REQUEST" },
  { name: "registerBranch with a body that is not JSON", method: "POST", path: "registerBranch", body: '{"gid":"bi-tcc",', status: 400, code: "INVALID_JSON" },

  // abort
  { name: "abort with gid 'a b'", method: "POST", path: "abort", body: { gid: "a b", trans_type: "tcc" }, status: 400, code: "INVALID_GID" },
  { name: "abort without gid", method: "POST", path: "abort", body: { trans_type: "tcc" }, status: 400, code: "INVALID_GID" },
  { name: "abort with a numeric gid", method: "POST", path: "abort", body: { gid: 7, trans_type: "tcc" }, status: 400, code: "INVALID_GID" },
  { name: "abort without trans_type", method: "POST", path: "abort", body: { gid: "bi-tcc" }, status: 400, code: "INVALID_TRANS_TYPE" },
  { name: "abort of an unknown gid", method: "POST", path: "abort", body: { gid: "bi-nobody", trans_type: "tcc" }, status: 404, code: "TRANS_NOT_FOUND" },
  { name: "abort of a saga", method: "POST", path: "abort", body: { gid: "bi-saga", trans_type: "saga" }, status: 409, code: "FAILURE" },
  { name: "abort of a saga named as tcc", method: "POST", path: "abort", body: { gid: "bi-saga", trans_type: "tcc" }, status: 409, code: "FAILURE" },
  { name: "abort of a prepared tcc named as saga", method: "POST", path: "abort", body: { gid: "bi-tcc", trans_type: "saga" }, status: 409, code: "FAILURE" },
  { name: "abort of a finished tcc", method: "POST", path: "abort", body: { gid: "bi-tcc-done", trans_type: "tcc" }, status: 409, code: "FAILURE" },

  // topics
  { name: "subscribe without topic", method: "GET", path: () => `subscribe?url=${q(U.other)}`, status: 400, code: "INVALID_REQUEST" },
  { name: "subscribe without url", method: "GET", path: "subscribe?topic=bi-topic", status: 400, code: "INVALID_REQUEST" },
  { name: "subscribe with an empty url", method: "GET", path: "subscribe?topic=bi-topic&url=", status: 400, code: "INVALID_REQUEST" },
  { name: "subscribe with url 'not-a-url'", method: "GET", path: "subscribe?topic=bi-topic&url=not-a-url", status: 400, code: "INVALID_URL" },
  { name: "subscribe with url ftp://x", method: "GET", path: `subscribe?topic=bi-topic&url=${q("ftp://x")}`, status: 400, code: "INVALID_URL" },
  { name: "subscribe with url given twice", method: "GET", path: () => `subscribe?topic=bi-topic&url=${q(U.other)}&url=${q(U.ok)}`, status: 400, code: "INVALID_REQUEST" },
  { name: "unsubscribe with url given twice", method: "GET", path: () => `unsubscribe?topic=bi-topic&url=${q(U.sub)}&url=${q(U.sub)}`, status: 400, code: "INVALID_REQUEST" },
  { name: "subscribe to topic 'a b'", method: "GET", path: () => `subscribe?topic=a%20b&url=${q(U.other)}`, status: 400, code: "INVALID_REQUEST" },
  { name: "subscribe the same url twice", method: "GET", path: () => `subscribe?topic=bi-topic&url=${q(U.sub)}`, status: 409, code: "TOPIC_SUBSCRIBER_EXISTS" },
  { name: "unsubscribe from an unknown topic", method: "GET", path: () => `unsubscribe?topic=bi-nothing&url=${q(U.sub)}`, status: 404, code: "TOPIC_NOT_FOUND" },
  { name: "unsubscribe a url that does not subscribe", method: "GET", path: () => `unsubscribe?topic=bi-topic&url=${q(U.other)}`, status: 404, code: "TOPIC_SUBSCRIBER_NOT_FOUND" },
  { name: "unsubscribe without topic", method: "GET", path: () => `unsubscribe?url=${q(U.sub)}`, status: 400, code: "INVALID_REQUEST" },
  { name: "unsubscribe without url", method: "GET", path: "unsubscribe?topic=bi-topic", status: 400, code: "INVALID_REQUEST" },
  { name: "DELETE an unknown topic", method: "DELETE", path: "topic/bi-nothing", status: 404, code: "TOPIC_NOT_FOUND" },
  { name: "DELETE topic 'a b'", method: "DELETE", path: "topic/a%20b", status: 400, code: "INVALID_REQUEST" },

  // prepareWorkflow
  { name: "prepareWorkflow of a saga", method: "POST", path: "prepareWorkflow", body: wfPrepare({ trans_type: "saga" }), status: 400, code: "UNSUPPORTED_TRANS_TYPE" },
  { name: "prepareWorkflow of a tcc", method: "POST", path: "prepareWorkflow", body: wfPrepare({ trans_type: "tcc" }), status: 400, code: "UNSUPPORTED_TRANS_TYPE" },
  { name: "prepareWorkflow without trans_type", method: "POST", path: "prepareWorkflow", body: wfPrepare({ trans_type: undefined }), status: 400, code: "INVALID_TRANS_TYPE" },
  { name: "prepareWorkflow without gid", method: "POST", path: "prepareWorkflow", body: wfPrepare({ gid: undefined }), status: 400, code: "INVALID_GID" },
  { name: "prepareWorkflow with a malformed callback URL", method: "POST", path: "prepareWorkflow", body: wfPrepare({ query_prepared: "callback" }), status: 400, code: "INVALID_URL" },
  { name: "prepareWorkflow with a non-string custom_data", method: "POST", path: "prepareWorkflow", body: wfPrepare({ custom_data: { name: "w" } }), status: 400, code: "INVALID_REQUEST" },
  { name: "prepareWorkflow with protocol 'soap'", method: "POST", path: "prepareWorkflow", body: wfPrepare({ protocol: "soap" }), status: 400, code: "INVALID_REQUEST" },

  // workflow submit
  { name: "workflow submit of an unknown gid", method: "POST", path: "submit", body: { gid: "bi-nobody", trans_type: "workflow", req_extra: { status: "succeed" } }, status: 404, code: "TRANS_NOT_FOUND" },
  { name: "workflow submit with req_extra.status 'done'", method: "POST", path: "submit", body: { gid: "bi-wf", trans_type: "workflow", req_extra: { status: "done" } }, status: 400, code: "INVALID_REQUEST" },
  { name: "workflow submit without req_extra", method: "POST", path: "submit", body: { gid: "bi-wf", trans_type: "workflow" }, status: 400, code: "INVALID_REQUEST" },
  { name: "workflow submit with req_extra a string", method: "POST", path: "submit", body: { gid: "bi-wf", trans_type: "workflow", req_extra: "succeed" }, status: 400, code: "INVALID_REQUEST" },
  { name: "workflow submit with a numeric req_extra.result", method: "POST", path: "submit", body: { gid: "bi-wf", trans_type: "workflow", req_extra: { status: "succeed", result: 1 } }, status: 400, code: "INVALID_REQUEST" },
  { name: "workflow submit flipping a finished workflow", method: "POST", path: "submit", body: { gid: "bi-wf-done", trans_type: "workflow", req_extra: { status: "failed" } }, status: 409, code: "FAILURE" },
];

async function send(c: Pick<Case, "method" | "path" | "body">): Promise<ApiResponse> {
  const path = typeof c.path === "function" ? c.path() : c.path;
  const body = typeof c.body === "function" ? c.body() : c.body;
  return dtx.client.call(c.method, `/api/dtmsvr/${path}`, body);
}

/** Sends the request; asserts status, code, no 5xx, and that nothing was written. */
async function expectRefused(c: Case): Promise<void> {
  const before = await snapshot();
  const r = await send(c);
  expect(r.status, `${c.name}: ${r.text}`).toBeLessThan(500);
  expect(r.status, `${c.name}: ${r.text}`).toBe(c.status);
  expect(r.body, c.name).toMatchObject({ code: c.code, message: expect.any(String) });
  // Every 409 is dtm's FAILURE, whatever its code (docs/errors.md).
  if (c.status === 409) {
    expect(r.body, c.name).toMatchObject({ dtm_result: "FAILURE" });
    expect(r.text).toContain("FAILURE");
  }
  expect(r.text, c.name).not.toMatch(/INTERNAL/);
  await dtx.client.settle();
  expect(await snapshot(), `${c.name} wrote something`).toBe(before);
}

describe("4xx with a stable code, nothing written", () => {
  it.each(CASES)("$name -> $status $code", async (c) => {
    await expectRefused(c);
  });

  it("covers every route this suite is about", () => {
    const paths = new Set(CASES.map((c) => (typeof c.path === "string" ? c.path : c.path()).split(/[?/]/)[0]));
    expect([...paths].sort()).toEqual(["abort", "prepare", "prepareWorkflow", "registerBranch", "registerXaBranch", "submit", "subscribe", "topic", "unsubscribe"]);
  });
});

describe("documented acceptances next to the refusals", () => {
  it("a TCC branch without a confirm URL is accepted: an empty URL is a branch with nothing to call", async () => {
    // docs/errors.md INVALID_URL: "A URL must be empty (a branch with nothing to call), ..."; dtm
    // stores "" and treats it as an immediate success. Listed here because it is easy to expect a 400.
    const gid = "bi-no-confirm";
    await ok(post("prepare", { gid, trans_type: "tcc" }));
    await ok(post("registerBranch", { gid, trans_type: "tcc", branch_id: "01", data: "{}", cancel: U.other }));
    await ok(post("submit", { gid, trans_type: "tcc", wait_result: true }));
    expect(await dtx.client.status(gid)).toBe("succeed");
    expect(busi.calls({ gid })).toHaveLength(0);
  });
});

describe("type confusion: a request naming another type than the stored trans", () => {
  it("workflow submit on a prepared tcc gid is refused and writes nothing", async () => {
    // A workflow submit must not finish a TCC (none of its Confirms would ever be called).
    await expectRefused({
      name: "workflow submit on a tcc",
      method: "POST",
      path: "submit",
      body: { gid: "bi-victim-tcc", trans_type: "workflow", req_extra: { status: "succeed" } },
      status: 400,
      code: "UNSUPPORTED_TRANS_TYPE",
    });
    expect(await dtx.client.status("bi-victim-tcc")).toBe("prepared");
  });

  it("abort (trans_type tcc) of a prepared workflow is refused and writes nothing", async () => {
    // abort checks the stored type too: dtm would move a workflow to aborting, where it is stuck.
    await expectRefused({
      name: "abort a workflow",
      method: "POST",
      path: "abort",
      body: { gid: "bi-victim-wf", trans_type: "tcc" },
      status: 409,
      code: "FAILURE",
    });
    expect(await dtx.client.status("bi-victim-wf")).toBe("prepared");
  });
});
