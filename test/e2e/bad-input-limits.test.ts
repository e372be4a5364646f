import { connect } from "node:net";
import { join } from "node:path";
import Database from "better-sqlite3";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status } from "@grpc/grpc-js";
import { ERROR_CATALOGUE } from "../../server/src/core/errors.ts";
import { DtmGrpcClient } from "../busi/grpc-busi.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

/**
 * Bad input that used to get through (issue 12 item 9, docs/input-limits.md): values nested too
 * deep to describe, unbounded echoes in error messages, numbers that become impossible times, rows
 * with such times already in the store, and requests Node's HTTP parser refuses. Every refusal is a
 * 4xx with a stable code and a short message, and writes nothing.
 */

const MAX_MESSAGE = 500;
let dtx: TestCoordinator;

beforeAll(async () => {
  dtx = await startCoordinator({});
});
afterAll(async () => {
  await dtx?.stop();
});

interface Reply {
  status: number;
  text: string;
  json: Record<string, unknown> | undefined;
}

async function send(method: "GET" | "POST", path: string, body?: string): Promise<Reply> {
  const res = await request(`${dtx.url}${path}`, { method, headers: body === undefined ? {} : { "content-type": "application/json" }, body });
  const text = await res.body.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, text, json };
}

async function expectNothingStored(gid: string): Promise<void> {
  const q = await send("GET", `/api/dtmsvr/query?gid=${gid}`);
  expect(q.status).toBe(200);
  expect(q.json).toEqual({ branches: [], transaction: null });
}

const deepArray = (depth: number): string => `${"[".repeat(depth)}1${"]".repeat(depth)}`;

describe("deeply nested values where a string is expected", () => {
  for (const route of ["submit", "prepare", "abort", "prepareWorkflow"]) {
    it(`${route}: trans_type nested 5,000 deep is a 400 INVALID_TRANS_TYPE, not a 500`, async () => {
      const gid = `deep-${route}`;
      const body = `{"gid":"${gid}","trans_type":${deepArray(5000)}}`;
      expect(body.length).toBeLessThan(11_000);
      const r = await send("POST", `/api/dtmsvr/${route}`, body);
      expect(r.status, r.text.slice(0, 200)).toBe(400);
      expect(r.json?.["code"]).toBe("INVALID_TRANS_TYPE");
      expect(r.text.length).toBeLessThan(MAX_MESSAGE + 100);
      await expectNothingStored(gid);
    });
  }

  it("a deeply nested value inside custom_data.orders is described, not serialised", async () => {
    const gid = "deep-orders";
    const customData = `{"orders":{"1":[${deepArray(5000)}]}}`;
    const body = { gid, trans_type: "saga", steps: [{ action: "", compensate: "" }, { action: "", compensate: "" }], payloads: ["", ""], custom_data: customData };
    const r = await send("POST", "/api/dtmsvr/submit", JSON.stringify(body));
    expect(r.status).toBe(400);
    expect(r.json?.["code"]).toBe("INVALID_ORDERS");
    expect(r.text.length).toBeLessThan(MAX_MESSAGE + 100);
    await expectNothingStored(gid);
  });

  it("JSON-RPC: a method nested 5,000 deep is -32601 with a code, not a 500", async () => {
    const r = await send("POST", "/api/json-rpc", `{"jsonrpc":"2.0","id":"1","method":${deepArray(5000)},"params":{}}`);
    expect(r.status, r.text.slice(0, 200)).toBe(200);
    expect(r.json?.["error"]).toMatchObject({ code: -32601, data: { code: "ROUTE_NOT_FOUND" } });
    expect(r.text.length).toBeLessThan(MAX_MESSAGE);
  });
});

describe("error messages echo at most a short piece of the input", () => {
  const huge = "k".repeat(100_000);
  const cases: [string, Record<string, unknown>, string][] = [
    ["a 100 KB step key", { trans_type: "saga", steps: [{ [huge]: 1 }], payloads: [""] }, "INVALID_REQUEST"],
    ["a 100 KB req_extra key", { trans_type: "saga", req_extra: { [huge]: 1 } }, "INVALID_REQUEST"],
    ["a 100 KB branch_headers name", { trans_type: "saga", branch_headers: { [huge]: "v" } }, "INVALID_OPTIONS"],
    ["a 100 KB trans_type", { trans_type: huge }, "INVALID_TRANS_TYPE"],
    ["a 100 KB orders key", { trans_type: "saga", steps: [{ action: "", compensate: "" }], payloads: [""], custom_data: JSON.stringify({ orders: { [huge]: [0] } }) }, "INVALID_ORDERS"],
    ["an unparsable 1,000-character URL", { trans_type: "saga", steps: [{ action: `http://[${"a".repeat(990)}`, compensate: "" }], payloads: [""] }, "INVALID_URL"],
  ];
  for (const [name, extra, code] of cases) {
    it(name, async () => {
      const gid = `echo-${code.toLowerCase()}-${name.length}`;
      const r = await send("POST", "/api/dtmsvr/submit", JSON.stringify({ gid, ...extra }));
      expect(r.status).toBe(400);
      expect(r.json?.["code"]).toBe(code);
      expect(String(r.json?.["message"]).length, String(r.json?.["message"]).slice(0, 300)).toBeLessThanOrEqual(MAX_MESSAGE);
      await expectNothingStored(gid);
    });
  }

  it("registerBranch with a 100 KB key", async () => {
    const r = await send("POST", "/api/dtmsvr/registerBranch", JSON.stringify({ gid: "echo-branch", trans_type: "tcc", [huge]: 1 }));
    expect(r.status).toBe(400);
    expect(r.json?.["code"]).toBe("INVALID_BRANCH");
    expect(String(r.json?.["message"]).length).toBeLessThanOrEqual(MAX_MESSAGE);
  });

  it("JSON-RPC: a 100 KB method name", async () => {
    const r = await send("POST", "/api/json-rpc", JSON.stringify({ jsonrpc: "2.0", id: "1", method: huge, params: {} }));
    expect((r.json?.["error"] as { code: number }).code).toBe(-32601);
    expect(r.text.length).toBeLessThan(MAX_MESSAGE);
  });

  it("a 10 KB unknown route", async () => {
    const r = await send("GET", `/api/${"x".repeat(10_000)}`);
    expect(r.status).toBe(404);
    expect(r.json?.["code"]).toBe("ROUTE_NOT_FOUND");
    expect(r.text.length).toBeLessThan(MAX_MESSAGE);
  });
});

function msg(gid: string, customData: string): string {
  return JSON.stringify({ gid, trans_type: "msg", steps: [{ action: "" }], payloads: [""], custom_data: customData, query_prepared: "http://127.0.0.1:1/qp" });
}

describe("numbers that become times are range-checked", () => {
  for (const [name, delay] of [["1e13", "1e13"], ["-1", "-1"], ["one year and a second", String(365 * 24 * 3600 + 1)], ["1e308", "1e308"]] as const) {
    for (const route of ["submit", "prepare"]) {
      it(`msg ${route} with custom_data.delay ${name}: 400 INVALID_OPTIONS, nothing written`, async () => {
        const gid = `delay-${route}-${name.replace(/\W/g, "")}`;
        const r = await send("POST", `/api/dtmsvr/${route}`, msg(gid, `{"delay":${delay}}`));
        expect(r.status, r.text).toBe(400);
        expect(r.json?.["code"]).toBe("INVALID_OPTIONS");
        await expectNothingStored(gid);
      });
    }
  }

  it("the key is matched case-insensitively, as for delivery", async () => {
    const r = await send("POST", "/api/dtmsvr/submit", msg("delay-upper", '{"Delay":1e13}'));
    expect(r.status).toBe(400);
    await expectNothingStored("delay-upper");
  });

  it("a delay of exactly one year is accepted, and the msg reads back", async () => {
    const r = await send("POST", "/api/dtmsvr/submit", msg("delay-year", `{"delay":${365 * 24 * 3600}}`));
    expect(r.status, r.text).toBe(200);
    const q = await send("GET", "/api/dtmsvr/query?gid=delay-year");
    expect(q.status).toBe(200);
    expect((q.json?.["transaction"] as { status: string }).status).toBe("submitted");
  });
});

describe("the test clock moves at most a year per call", () => {
  for (const advanceMs of [31_536_000_001, 1e13, 1e308]) {
    it(`advanceMs ${advanceMs}: 400 INVALID_REQUEST, the clock unmoved`, async () => {
      const before = (await send("POST", "/api/dtx/test/clock", JSON.stringify({ advanceMs: 0 }))).json?.["now"];
      const r = await send("POST", "/api/dtx/test/cron", JSON.stringify({ advanceMs }));
      expect(r.status, r.text).toBe(400);
      expect(r.json?.["code"]).toBe("INVALID_REQUEST");
      const after = (await send("POST", "/api/dtx/test/clock", JSON.stringify({ advanceMs: 0 }))).json?.["now"];
      expect(Number(after) - Number(before)).toBeLessThan(60_000);
    });
  }
});

describe("a stored row with impossible times never breaks query or /all", () => {
  it("is listed, its times rendered within years 0000-9999", async () => {
    const db = new Database(join(dtx.dataDir, "dtx.db"));
    try {
      const insertTrans = db.prepare(`INSERT INTO trans_global (gid, trans_type, status, protocol, create_time, update_time, finish_time, rollback_time,
        options, custom_data, next_cron_interval, next_cron_time) VALUES (?, ?, ?, 'http', ?, ?, ?, ?, ?, ?, ?, ?)`);
      // As an older version (which accepted delay 1e13) or a hand edit could have left them.
      insertTrans.run("absurd-1", "msg", "submitted", 1e17, 8.65e15, -1e17, 1e300, '{"timeout_to_fail":1e308,"retry_interval":1e300,"request_timeout":-5,"retry_limit":1e300}',
        '{"delay":1e13}', 1e300, 1e17);
      insertTrans.run("absurd-2", "saga", "succeed", "not a time", 0, null, null, "not json", "", 0, 0);
      db.prepare(`INSERT INTO trans_branch_op (gid, url, bin_data, branch_id, op, status, finish_time, create_time, update_time)
        VALUES ('absurd-1', '', NULL, '01', 'action', 'prepared', 1e300, 9e15, -9e15)`).run();
    } finally {
      db.close();
    }

    const q = await send("GET", "/api/dtmsvr/query?gid=absurd-1");
    expect(q.status, q.text).toBe(200);
    const t = q.json?.["transaction"] as Record<string, unknown>;
    expect(t["create_time"]).toBe("9999-12-31T23:59:59.999Z");
    expect(t["finish_time"]).toBe("0000-01-01T00:00:00.000Z");
    const b = (q.json?.["branches"] as Record<string, unknown>[])[0];
    expect(b?.["create_time"]).toBe("9999-12-31T23:59:59.999Z");

    const q2 = await send("GET", "/api/dtmsvr/query?gid=absurd-2");
    expect(q2.status, q2.text).toBe(200);

    let position = "";
    const gids: string[] = [];
    for (;;) {
      const page = await send("GET", `/api/dtmsvr/all?limit=1${position ? `&position=${position}` : ""}`);
      expect(page.status, page.text).toBe(200);
      for (const x of (page.json?.["transactions"] as { gid: string }[] | null) ?? []) gids.push(x.gid);
      position = String(page.json?.["next_position"] ?? "");
      if (!position) break;
    }
    expect(gids).toEqual(expect.arrayContaining(["absurd-1", "absurd-2"]));

    // A cron round over the bad row neither fails nor leaves a time that cannot be read back.
    await dtx.client.cron(1000);
    const after = await send("GET", "/api/dtmsvr/query?gid=absurd-1");
    expect(after.status, after.text).toBe(200);
    expect((await send("GET", "/api/dtmsvr/all")).status).toBe(200);
  });
});

/** Sends raw bytes on a fresh connection and reads until the server closes it. */
function rawHttp(bytes: string): Promise<string> {
  const port = Number(new URL(dtx.url).port);
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.end(bytes));
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", () => resolve(Buffer.concat(chunks).toString("latin1")));
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
    socket.setTimeout(10_000, () => reject(new Error("no answer")));
  });
}

function parseRaw(text: string): { status: number; body: Record<string, unknown> } {
  const [head = "", body = ""] = text.split("\r\n\r\n");
  return { status: Number(head.split(" ")[1]), body: JSON.parse(body) as Record<string, unknown> };
}

describe("requests Node's HTTP parser refuses answer {message, code}", () => {
  it("oversized headers: 431 HEADERS_TOO_LARGE", async () => {
    const r = parseRaw(await rawHttp(`GET /api/ping HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`));
    expect(r.status).toBe(431);
    expect(r.body).toEqual({ message: expect.any(String), code: "HEADERS_TOO_LARGE" });
  });

  for (const [name, bytes] of [
    ["a garbage request line", "GARBAGE\r\n\r\n"],
    ["a bad header line", "GET /api/ping HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"],
    ["bad chunked framing", "POST /api/dtmsvr/submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"],
  ] as const) {
    it(`${name}: 400 BAD_HTTP_REQUEST`, async () => {
      const r = parseRaw(await rawHttp(bytes));
      expect(r.status).toBe(400);
      expect(r.body).toEqual({ message: expect.any(String), code: "BAD_HTTP_REQUEST" });
    });
  }
});

describe("JSON-RPC -32603 does not echo the exception", () => {
  it("answers a generic message with a stable code when the store fails under it", async () => {
    const other = await startCoordinator({});
    try {
      // A real fault: the store is closed under a running coordinator.
      await other.coordinator.store.close();
      const res = await request(`${other.url}/api/json-rpc`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: "1", method: "submit", params: { gid: "rpc-store-closed", trans_type: "saga", steps: [], payloads: [] } }),
      });
      const body = (await res.body.json()) as { error: { code: number; message: string; data?: { code: string } } };
      expect(body.error.code).toBe(-32603);
      const code = body.error.data?.code ?? "";
      expect(Object.keys(ERROR_CATALOGUE)).toContain(code);
      // better-sqlite3's own text for a closed handle, which the reply used to carry verbatim.
      expect(body.error.message).not.toContain("connection is not open");
    } finally {
      await other.stop().catch(() => undefined);
    }
  });
});

describe("gRPC answers a message quoting half a surrogate pair", () => {
  it("Prepare with Steps that is an emoji: INVALID_ARGUMENT, not an unanswered call and an unhandled rejection", async () => {
    const grpc = new DtmGrpcClient(`127.0.0.1:${dtx.grpcPort}`);
    try {
      // V8's JSON syntax error quotes one UTF-16 unit of the emoji; grpc-js's encodeURI threw on it.
      const r = await grpc.call("Prepare", { Gid: "grpc-emoji-steps", TransType: "msg", Steps: "\u{1F600}", QueryPrepared: "http://127.0.0.1:1/q" });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(status[r.code]).toBe("INVALID_ARGUMENT");
        expect(r.dtxCode).toBe("INVALID_REQUEST");
      }
      await expectNothingStored("grpc-emoji-steps");
    } finally {
      grpc.close();
    }
  });
});
