/**
 * Opt-in bearer-token authentication (docs/security.md#authentication) against real servers on loopback: every
 * HTTP route and every dtmgimp.Dtm method × {no token, bad token, client, admin, metrics}, the
 * answers to refused calls (401 + WWW-Authenticate / 403, UNAUTHENTICATED / PERMISSION_DENIED),
 * that a refused call writes nothing, the open routes, auth off by default, and the SDK's token.
 */
import { randomBytes } from "node:crypto";
import { runInNewContext } from "node:vm";
import { Client, credentials, Metadata, status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DtxClient as SdkClient, DtxError, Saga } from "../../sdk/src/index.ts";
import type { Access, Role } from "../../server/src/api/auth.ts";
import { GRPC_METHOD_ROLES, HTTP_ROUTE_ROLES, tokenDigest } from "../../server/src/api/auth.ts";
import { loadDtmProto } from "../../server/src/api/grpc/proto.ts";
import { ADMIN_JS } from "../../server/src/api/http/admin-page.ts";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

const TOKENS = {
  client: `client-${randomBytes(8).toString("hex")}`,
  admin: `admin-${randomBytes(8).toString("hex")}`,
  metrics: `metrics-${randomBytes(8).toString("hex")}`,
} as const satisfies Record<Role, string>;

type Who = "none" | "bad" | Role;
const WHO: readonly Who[] = ["none", "bad", "client", "admin", "metrics"];

function authorization(who: Who): Record<string, string> {
  if (who === "none") return {};
  if (who === "bad") return { authorization: "Bearer not-a-known-token" };
  return { authorization: `Bearer ${TOKENS[who]}` };
}

/** The answer `who` gets for something that needs `access`: allowed, 401 or 403. */
function expected(access: Access, who: Who): "allowed" | 401 | 403 {
  if (access === "open") return "allowed";
  if (who === "none" || who === "bad") return 401;
  if (who === "admin" || who === access) return "allowed";
  return 403;
}

let dtx: TestCoordinator;
let busi: Busi;
let grpc: Client;

beforeAll(async () => {
  busi = await startBusi();
  dtx = await startCoordinator({
    auth: {
      tokens: [
        { name: "app", sha256: tokenDigest(TOKENS.client), roles: ["client"] },
        { name: "ops", sha256: tokenDigest(TOKENS.admin).toUpperCase(), roles: ["admin"] },
        { name: "prometheus", sha256: tokenDigest(TOKENS.metrics), roles: ["metrics"] },
      ],
    },
  });
  grpc = new Client(`127.0.0.1:${dtx.grpcPort}`, credentials.createInsecure());
});
afterAll(async () => {
  grpc?.close();
  await dtx?.stop();
  await busi?.close();
});

const gid = (): string => `auth-${randomBytes(6).toString("hex")}`;

async function http(method: string, path: string, who: Who, body?: unknown): Promise<{ status: number; headers: Headers; json: Record<string, unknown> | null }> {
  const res = await fetch(`${dtx.url}${path}`, {
    method,
    redirect: "manual",
    headers: { ...authorization(who), ...(body !== undefined ? { "content-type": "application/json" } : {}) },
    ...(body !== undefined ? { body: typeof body === "string" ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, json };
}

/** The stored trans, read with the admin token (null when there is none). */
async function stored(g: string): Promise<Record<string, unknown> | null> {
  const r = await http("GET", `/api/dtmsvr/query?gid=${g}`, "admin");
  expect(r.status).toBe(200);
  return (r.json?.["transaction"] as Record<string, unknown> | null) ?? null;
}

interface HttpCase {
  /** The route pattern, as in HTTP_ROUTE_ROLES. */
  route: string;
  method: string;
  /** The path and body to send (fresh each call). */
  request: () => { path: string; body?: unknown };
  /** The status an allowed caller gets. */
  ok: number;
  /** After a refused call: checks that it wrote nothing. */
  wroteNothing?: (request: { path: string; body?: unknown }) => Promise<void>;
}

const noTrans = async (r: { body?: unknown }): Promise<void> => {
  expect(await stored((r.body as { gid: string }).gid)).toBeNull();
};

const HTTP_CASES: HttpCase[] = [
  { route: "/api/ping", method: "GET", request: () => ({ path: "/api/ping" }), ok: 200 },
  { route: "/api/dtx/health", method: "GET", request: () => ({ path: "/api/dtx/health" }), ok: 200 },
  { route: "/", method: "GET", request: () => ({ path: "/" }), ok: 302 },
  { route: "/admin", method: "GET", request: () => ({ path: "/admin" }), ok: 302 },
  { route: "/admin/", method: "GET", request: () => ({ path: "/admin/" }), ok: 200 },
  { route: "/admin/app.js", method: "GET", request: () => ({ path: "/admin/app.js" }), ok: 200 },
  { route: "/admin/style.css", method: "GET", request: () => ({ path: "/admin/style.css" }), ok: 200 },
  { route: "/api/metrics", method: "GET", request: () => ({ path: "/api/metrics" }), ok: 200 },
  { route: "/api/dtmsvr/version", method: "GET", request: () => ({ path: "/api/dtmsvr/version" }), ok: 200 },
  { route: "/api/dtmsvr/newGid", method: "GET", request: () => ({ path: "/api/dtmsvr/newGid" }), ok: 200 },
  {
    route: "/api/dtmsvr/submit", method: "POST", ok: 200, wroteNothing: noTrans,
    request: () => ({ path: "/api/dtmsvr/submit", body: sagaBody(gid(), (n) => busi.url(n), { wait_result: true }) }),
  },
  {
    route: "/api/dtmsvr/prepare", method: "POST", ok: 200, wroteNothing: noTrans,
    request: () => ({ path: "/api/dtmsvr/prepare", body: { gid: gid(), trans_type: "tcc" } }),
  },
  { route: "/api/dtmsvr/abort", method: "POST", ok: 404, request: () => ({ path: "/api/dtmsvr/abort", body: { gid: gid(), trans_type: "tcc" } }) },
  ...["registerBranch", "registerXaBranch", "registerTccBranch"].map((name): HttpCase => ({
    route: `/api/dtmsvr/${name}`, method: "POST", ok: 409, // dtm's FAILURE for a gid with no prepared trans
    request: () => ({ path: `/api/dtmsvr/${name}`, body: { gid: gid(), trans_type: "tcc", branch_id: "01", confirm: busi.url("TccConfirm"), cancel: busi.url("TccCancel"), data: "{}" } }),
  })),
  {
    route: "/api/dtmsvr/prepareWorkflow", method: "POST", ok: 200, wroteNothing: noTrans,
    request: () => ({ path: "/api/dtmsvr/prepareWorkflow", body: { gid: gid(), trans_type: "workflow", protocol: "http", query_prepared: busi.url("Workflow") } }),
  },
  { route: "/api/dtmsvr/query", method: "GET", request: () => ({ path: `/api/dtmsvr/query?gid=${gid()}` }), ok: 200 },
  {
    route: "/api/dtmsvr/subscribe", method: "GET", ok: 200,
    request: () => ({ path: `/api/dtmsvr/subscribe?topic=${gid()}&url=${encodeURIComponent(busi.url("TransIn"))}` }),
    wroteNothing: async (r) => {
      const topic = new URL(r.path, dtx.url).searchParams.get("topic") ?? "";
      const kv = await http("GET", `/api/dtmsvr/queryKV?cat=topics&key=${topic}`, "admin");
      expect(kv.json?.["kv"]).toEqual([]);
    },
  },
  { route: "/api/dtmsvr/unsubscribe", method: "GET", ok: 404, request: () => ({ path: `/api/dtmsvr/unsubscribe?topic=${gid()}&url=${encodeURIComponent(busi.url("TransIn"))}` }) },
  { route: "/api/dtmsvr/queryKV", method: "GET", request: () => ({ path: "/api/dtmsvr/queryKV?cat=topics" }), ok: 200 },
  {
    route: "/api/json-rpc", method: "POST", ok: 200,
    request: () => ({ path: "/api/json-rpc", body: { jsonrpc: "2.0", id: "1", method: "submit", params: sagaBody(gid(), (n) => busi.url(n), { wait_result: true }) } }),
    wroteNothing: async (r) => {
      expect(await stored((r.body as { params: { gid: string } }).params.gid)).toBeNull();
    },
  },
  { route: "/api/dtmsvr/forceStop", method: "POST", ok: 404, request: () => ({ path: "/api/dtmsvr/forceStop", body: { gid: gid() } }) },
  { route: "/api/dtmsvr/resetNextCronTime", method: "POST", ok: 404, request: () => ({ path: "/api/dtmsvr/resetNextCronTime", body: { gid: gid() } }) },
  { route: "/api/dtmsvr/resetCronTime", method: "GET", request: () => ({ path: "/api/dtmsvr/resetCronTime?timeout=0&limit=1" }), ok: 200 },
  { route: "/api/dtmsvr/all", method: "GET", request: () => ({ path: "/api/dtmsvr/all?limit=1" }), ok: 200 },
  { route: "/api/dtmsvr/scanKV", method: "GET", request: () => ({ path: "/api/dtmsvr/scanKV?cat=topics" }), ok: 200 },
  { route: "/api/dtmsvr/topic/:topicName", method: "DELETE", request: () => ({ path: `/api/dtmsvr/topic/${gid()}` }), ok: 404 },
  { route: "/api/dtx/test/clock", method: "POST", request: () => ({ path: "/api/dtx/test/clock", body: {} }), ok: 200 },
  { route: "/api/dtx/test/cron", method: "POST", request: () => ({ path: "/api/dtx/test/cron", body: {} }), ok: 200 },
  { route: "/api/dtx/test/retention", method: "POST", request: () => ({ path: "/api/dtx/test/retention", body: {} }), ok: 200 },
  { route: "/api/dtx/test/settle", method: "POST", request: () => ({ path: "/api/dtx/test/settle", body: {} }), ok: 200 },
  { route: "/api/dtx/test/crash", method: "POST", request: () => ({ path: "/api/dtx/test/crash", body: { point: "no-such-point" } }), ok: 400 },
];

const HTTP_MATRIX = HTTP_CASES.flatMap((c) => WHO.map((who) => ({ ...c, who, access: HTTP_ROUTE_ROLES[c.route] ?? "?", want: expected(HTTP_ROUTE_ROLES[c.route] ?? "admin", who) })));

describe("HTTP, auth on", () => {
  it("the matrix covers every route of the access table, and the table every route served", () => {
    expect(HTTP_CASES.map((c) => c.route).sort()).toEqual(Object.keys(HTTP_ROUTE_ROLES).sort());
    // The server refuses to start with a route missing from the table; this one started.
    expect(dtx.coordinator.http.hasRoute({ method: "GET", url: "/api/dtmsvr/all" })).toBe(true);
  });

  it.each(HTTP_MATRIX)("$method $route ($access) as $who → $want", async ({ method, request, ok, who, want, wroteNothing }) => {
    const r = request();
    const res = await http(method, r.path, who, r.body);
    if (want === "allowed") {
      expect(res.status).toBe(ok);
      return;
    }
    expect(res.status).toBe(want);
    expect(res.json).toMatchObject({ code: want === 401 ? "UNAUTHENTICATED" : "FORBIDDEN" });
    expect(typeof res.json?.["message"]).toBe("string");
    if (want === 401) expect(res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
    else expect(res.headers.get("www-authenticate")).toBeNull();
    await wroteNothing?.(r);
  });

  it("a refused forceStop leaves the trans as it was", async () => {
    const g = gid();
    expect((await http("POST", "/api/dtmsvr/prepare", "client", { gid: g, trans_type: "tcc" })).status).toBe(200);
    expect((await http("POST", "/api/dtmsvr/forceStop", "client", { gid: g })).status).toBe(403);
    expect((await http("POST", "/api/dtmsvr/forceStop", "none", { gid: g })).status).toBe(401);
    expect((await stored(g))?.["status"]).toBe("prepared");
    expect((await http("POST", "/api/dtmsvr/forceStop", "admin", { gid: g })).status).toBe(200);
    expect((await stored(g))?.["status"]).toBe("failed");
  });

  it("refuses before reading the body: a bad or oversized body is still 401", async () => {
    expect((await http("POST", "/api/dtmsvr/submit", "none", "{not json")).status).toBe(401);
    expect((await http("POST", "/api/dtmsvr/submit", "bad", "x".repeat(2 * 1024 * 1024))).status).toBe(401);
    expect((await http("POST", "/api/dtmsvr/submit", "client", "{not json")).status).toBe(400);
  });

  it.each([
    ["Basic dXNlcjpwYXNz", 401],
    ["Bearer", 401],
    ["Bearer ", 401],
    [`Token ${TOKENS.client}`, 401],
    [`Bearer ${TOKENS.client} extra`, 401],
    [`Bearer ${TOKENS.client}x`, 401],
    [`bearer ${TOKENS.client}`, 200],
    [`BEARER  ${TOKENS.client}`, 200],
  ] as const)("Authorization %j → %i", async (header, want) => {
    const res = await fetch(`${dtx.url}/api/dtmsvr/newGid`, { headers: { authorization: header } });
    expect(res.status).toBe(want);
  });

  it("unknown routes stay 404 ROUTE_NOT_FOUND with or without a token", async () => {
    for (const who of ["none", "client"] as const) {
      const res = await http("GET", "/api/dtmsvr/nope", who);
      expect(res.status).toBe(404);
      expect(res.json?.["code"]).toBe("ROUTE_NOT_FOUND");
    }
  });

  it("metrics count refused requests without failing", async () => {
    const text = await (await fetch(`${dtx.url}/api/metrics`, { headers: authorization("metrics") })).text();
    // The matrix above sent refused calls to forceStop: counted as failed calls of that API.
    expect(text).toMatch(/^dtm_server_process_total\{type="http",api="forcestop",status="fail"\} [1-9]/m);
  });
});

interface FakeNode {
  value: string;
  textContent: string;
  listeners: Record<string, () => void>;
  [key: string]: unknown;
}

/** Runs the admin page's script against the coordinator with a stub DOM; records its API calls. */
function runAdminPage(stored: string) {
  const storage = new Map<string, string>(stored ? [["dtx-admin-token", stored]] : []);
  const node = (): FakeNode => {
    const n: FakeNode = { value: "", textContent: "", listeners: {} };
    Object.assign(n, {
      setAttribute() {}, appendChild() {}, replaceChildren() {},
      addEventListener(type: string, fn: () => void) { n.listeners[type] = fn; },
    });
    return n;
  };
  const byId = new Map<string, FakeNode>();
  const calls: { path: string; authorization: string | undefined; status: Promise<number> }[] = [];
  const context = {
    document: { getElementById: (id: string) => byId.get(id) ?? byId.set(id, node()).get(id), createElement: node, createTextNode: node },
    location: { hash: "" },
    window: { addEventListener() {} },
    URLSearchParams,
    sessionStorage: {
      getItem: (k: string) => storage.get(k) ?? null,
      setItem: (k: string, v: string) => void storage.set(k, v),
      removeItem: (k: string) => void storage.delete(k),
    },
    fetch: (path: string, init: { headers: Record<string, string> }) => {
      const res = fetch(`${dtx.url}${path}`, init);
      calls.push({ path: path.split("?")[0] ?? path, authorization: init.headers["authorization"], status: res.then((r) => r.status) });
      return res;
    },
  };
  runInNewContext(ADMIN_JS, context);
  return { calls, storage, token: byId.get("token")! };
}

describe("the admin page with auth on", () => {
  it("without a token its API calls are refused; a token typed in is kept in sessionStorage and sent", async () => {
    const page = runAdminPage("");
    expect(page.token.value).toBe("");
    expect(page.calls.map((c) => c.path).sort()).toEqual(["/api/dtmsvr/all", "/api/dtmsvr/version"]);
    for (const c of page.calls) {
      expect(c.authorization).toBeUndefined();
      expect(await c.status).toBe(401);
    }
    page.token.value = ` ${TOKENS.admin} `;
    page.token.listeners["change"]!();
    expect(page.storage.get("dtx-admin-token")).toBe(TOKENS.admin);
    const after = page.calls.slice(2);
    expect(after.map((c) => c.path).sort()).toEqual(["/api/dtmsvr/all", "/api/dtmsvr/version"]);
    for (const c of after) {
      expect(c.authorization).toBe(`Bearer ${TOKENS.admin}`);
      expect(await c.status).toBe(200);
    }
  });

  it("uses the token stored in sessionStorage; a client token is FORBIDDEN on the listing", async () => {
    const page = runAdminPage(TOKENS.client);
    expect(page.token.value).toBe(TOKENS.client);
    const statuses = Object.fromEntries(await Promise.all(page.calls.map(async (c) => [c.path, await c.status] as const)));
    expect(statuses).toEqual({ "/api/dtmsvr/version": 200, "/api/dtmsvr/all": 403 });
  });
});

// ---- gRPC ----

const DTM = loadDtmProto()["dtmgimp.Dtm"] as Record<string, MethodDefinition<unknown, unknown>>;

interface GrpcAnswer {
  error: ServiceError | null;
}

function grpcCall(method: string, message: unknown, who: Who): Promise<GrpcAnswer> {
  const def = DTM[method];
  if (!def) throw new Error(`no method ${method}`);
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(authorization(who))) metadata.set(k, v);
  return new Promise((resolve) => {
    grpc.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, message, metadata, { deadline: Date.now() + 10_000 }, (error) => {
      resolve({ error: error ?? null });
    });
  });
}

const grpcSaga = (g: string) => ({
  Gid: g,
  TransType: "saga",
  Steps: JSON.stringify([{ action: busi.url("TransOut"), compensate: busi.url("TransOutRevert") }]),
  BinPayloads: [Buffer.from("{}")],
  TransOptions: { WaitResult: true },
});

interface GrpcCase {
  method: string;
  message: () => Record<string, unknown>;
  /** The status an allowed caller gets. */
  ok: status;
  wroteNothing?: (message: Record<string, unknown>) => Promise<void>;
}

const noGrpcTrans = async (m: Record<string, unknown>): Promise<void> => {
  expect(await stored(m["Gid"] as string)).toBeNull();
};

const GRPC_CASES: GrpcCase[] = [
  { method: "NewGid", message: () => ({}), ok: status.OK },
  { method: "Submit", message: () => grpcSaga(gid()), ok: status.OK, wroteNothing: noGrpcTrans },
  { method: "Prepare", message: () => ({ Gid: gid(), TransType: "tcc" }), ok: status.OK, wroteNothing: noGrpcTrans },
  { method: "Abort", message: () => ({ Gid: gid(), TransType: "tcc" }), ok: status.NOT_FOUND },
  { method: "RegisterBranch", message: () => ({ Gid: gid(), TransType: "tcc", BranchID: "01", Data: { confirm: busi.url("TccConfirm"), cancel: busi.url("TccCancel") } }), ok: status.ABORTED },
  { method: "PrepareWorkflow", message: () => ({ Gid: gid(), TransType: "workflow", QueryPrepared: busi.url("Workflow") }), ok: status.OK, wroteNothing: noGrpcTrans },
  { method: "Subscribe", message: () => ({ Topic: gid(), URL: busi.url("TransIn") }), ok: status.OK },
  { method: "Unsubscribe", message: () => ({ Topic: gid(), URL: busi.url("TransIn") }), ok: status.NOT_FOUND },
  { method: "DeleteTopic", message: () => ({ Topic: gid() }), ok: status.NOT_FOUND },
];

const GRPC_MATRIX = GRPC_CASES.flatMap((c) => WHO.map((who) => ({ ...c, who, access: GRPC_METHOD_ROLES[c.method] ?? "?", want: expected(GRPC_METHOD_ROLES[c.method] ?? "admin", who) })));

describe("gRPC, auth on", () => {
  it("the matrix covers every method of dtmgimp.Dtm and of the access table", () => {
    expect(GRPC_CASES.map((c) => c.method).sort()).toEqual(Object.keys(DTM).sort());
    expect(Object.keys(GRPC_METHOD_ROLES).sort()).toEqual(Object.keys(DTM).sort());
  });

  it.each(GRPC_MATRIX)("$method ($access) as $who → $want", async ({ method, message, ok, who, want, wroteNothing }) => {
    const m = message();
    const { error } = await grpcCall(method, m, who);
    if (want === "allowed") {
      expect(error?.code ?? status.OK).toBe(ok);
      return;
    }
    expect(error?.code).toBe(want === 401 ? status.UNAUTHENTICATED : status.PERMISSION_DENIED);
    expect(error?.metadata.get("dtx-code")).toEqual([want === 401 ? "UNAUTHENTICATED" : "FORBIDDEN"]);
    await wroteNothing?.(m);
  });

  it("health checking stays open", async () => {
    for (const who of ["none", "bad", "client"] as const) {
      const metadata = new Metadata();
      for (const [k, v] of Object.entries(authorization(who))) metadata.set(k, v);
      const reply = await new Promise<Buffer>((resolve, reject) => {
        grpc.makeUnaryRequest("/grpc.health.v1.Health/Check", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), metadata, (error, r) => (error ? reject(error) : resolve(r ?? Buffer.alloc(0))));
      });
      expect([...reply]).toEqual([0x08, 0x01]); // status: SERVING
    }
  });
});

// ---- SDK ----

describe("SDK with a token", () => {
  it.each(["HTTP", "gRPC"])("runs a saga over %s and queries it", async (transport) => {
    const where = transport === "gRPC" ? { grpcServer: `127.0.0.1:${dtx.grpcPort}`, server: dtx.url } : { server: dtx.url };
    const client = new SdkClient({ ...where, token: TOKENS.client });
    try {
      const g = await client.newGid();
      await new Saga(client, g, { waitResult: true }).add(busi.url("TransOut"), busi.url("TransOutRevert"), {}).submit();
      expect((await client.query(g)).transaction?.status).toBe("succeed");
    } finally {
      await client.close();
    }
  });

  it("without a token or with a wrong one, calls fail with the server's code", async () => {
    for (const options of [{ server: dtx.url }, { server: dtx.url, token: "wrong" }, { grpcServer: `127.0.0.1:${dtx.grpcPort}` }]) {
      const client = new SdkClient(options);
      try {
        const err = await client.newGid().then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(DtxError);
        expect((err as DtxError).serverCode).toBe("UNAUTHENTICATED");
      } finally {
        await client.close();
      }
    }
  });

  it("a metrics-only token is FORBIDDEN on the transaction API", async () => {
    const client = new SdkClient({ server: dtx.url, token: TOKENS.metrics });
    const err = await client.newGid().then(() => undefined, (e: unknown) => e);
    expect((err as DtxError).serverCode).toBe("FORBIDDEN");
    await client.close();
  });

  it("refuses a token that cannot be sent as a header", () => {
    expect(() => new SdkClient({ server: dtx.url, token: "has space" })).toThrow(DtxError);
  });
});

describe("auth off (the default)", () => {
  let open: TestCoordinator;
  beforeAll(async () => {
    open = await startCoordinator();
  });
  afterAll(async () => {
    await open?.stop();
  });

  it("every route answers without a header, and an Authorization header is ignored", async () => {
    for (const headers of [{}, { authorization: "Bearer anything" }] as Record<string, string>[]) {
      for (const path of ["/api/dtmsvr/newGid", "/api/dtmsvr/all", "/api/metrics", "/api/ping"]) {
        expect((await fetch(`${open.url}${path}`, { headers })).status, path).toBe(200);
      }
    }
  });

  it("gRPC answers without metadata", async () => {
    const client = new SdkClient({ grpcServer: `127.0.0.1:${open.grpcPort}` });
    try {
      expect(await client.newGid()).not.toBe("");
    } finally {
      await client.close();
    }
  });
});
