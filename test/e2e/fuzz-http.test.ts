import fc from "fast-check";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BodyOp, ValidCase } from "../helpers/fuzz-bodies.ts";
import { COMMON_PATHS, CREATING_OPS, pathsOf, validCaseArb } from "../helpers/fuzz-bodies.ts";
import type { JsonObject, ObjMutation, TextMutation } from "../helpers/fuzz.ts";
import {
  announceSeed, applyObjMutation, applyTextMutation, badGidArb, DOCUMENTED_CODES, encodeJson, fieldIn, FUZZ_SCALE, FUZZ_SEED,
  FuzzLedger, FuzzStats, MAX_MESSAGE_CHARS, objMutationArb, textMutationArb, unusedPort, weirdValueArb,
} from "../helpers/fuzz.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

/**
 * fast-check over every HTTP route (docs/input-limits.md, "Fuzzing"): valid bodies for every
 * transaction operation (submit, prepare, abort, the three registerBranch routes, prepareWorkflow,
 * forceStop, resetNextCronTime) mutated at the object level (wrong types, deep nesting, absurd
 * numbers and times, unicode/NUL gids, oversized fields, reused gids) and at the text level
 * (garbage, truncation, duplicate keys, bad number tokens), with a wrong content type now and
 * then; and every GET/DELETE route (query, all, scanKV, queryKV, subscribe, unsubscribe,
 * resetCronTime, topic, newGid, version, ping, health, metrics, the admin page, the test clock
 * and cron) with mutated query strings and paths. The test-control `crash` and `settle` routes are
 * left out: arming a crash point ends the process by design.
 *
 * Oracle, per request: never a 5xx; a refusal is a 4xx whose JSON body has a documented `code`
 * matching the status, and a bounded message; a refused request leaves no row for its gid, and a
 * refused registerBranch no branch row. Per batch: the store holds exactly the accepted
 * transactions, no branch row without one, and each reads back through /query and /all paging.
 *
 * Replay a failure with the printed seed: DTX_FUZZ_SEED=<seed> npx vitest run test/e2e/fuzz-http.test.ts
 */

const FILE = "test/e2e/fuzz-http.test.ts";
const BATCHES = 10;
const RUNS_PER_BATCH = Math.round(1000 * FUZZ_SCALE);
const MAX_BRANCHES = 20;
const MAX_PAYLOAD_BYTES = 2048;
const MAX_BODY_BYTES = 64 * 1024;
const PAGE_SIZES = [1000, 7, 100, 1];

let dtx: TestCoordinator;
let ledger: FuzzLedger;
let deadPort = 0;
const agent = new Agent({ connections: 8, keepAliveTimeout: 60_000, pipelining: 1 });
const stats = new FuzzStats();

beforeAll(async () => {
  announceSeed(FILE);
  deadPort = await unusedPort();
  dtx = await startCoordinator({ maxBranches: MAX_BRANCHES, maxPayloadBytes: MAX_PAYLOAD_BYTES, maxBodyBytes: MAX_BODY_BYTES });
  ledger = new FuzzLedger(dtx);
  // A topic with a subscriber, so msg steps `topic://t1` can be accepted.
  const r = await request(`${dtx.url}/api/dtmsvr/subscribe?topic=t1&url=${encodeURIComponent(`http://127.0.0.1:${deadPort}/sub`)}`, { dispatcher: agent });
  expect(r.statusCode).toBe(200);
  await r.body.dump();
});
afterAll(async () => {
  await ledger?.close();
  await agent.close();
  await dtx?.stop();
});

// ---------------------------------------------------------------------------------------------
// Cases

const REGISTER_ROUTES = ["registerBranch", "registerXaBranch", "registerTccBranch"];

interface BodyCase {
  kind: "body";
  valid: ValidCase;
  route: number;
  mutations: ObjMutation[];
  text: TextMutation | undefined;
  contentType: string | null;
}

const contentTypeArb: fc.Arbitrary<string | null> = fc.oneof(
  { arbitrary: fc.constant("application/json"), weight: 30 },
  { arbitrary: fc.constantFrom("application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "", null, "application/json; charset=latin1", "multipart/form-data; boundary=x"), weight: 1 },
);

const bodyCaseArb = (): fc.Arbitrary<BodyCase> => validCaseArb({ maxBranches: MAX_BRANCHES, maxPayloadBytes: MAX_PAYLOAD_BYTES, deadPort }).chain((valid) =>
  fc.record({
    kind: fc.constant("body" as const),
    valid: fc.constant(valid),
    route: fc.nat(2),
    mutations: fc.oneof({ arbitrary: fc.constant<ObjMutation[]>([]), weight: 1 }, { arbitrary: fc.array(objMutationArb([...pathsOf(valid.body), ...COMMON_PATHS]), { minLength: 1, maxLength: 3 }), weight: 3 }),
    text: fc.oneof({ arbitrary: fc.constant(undefined), weight: 5 }, { arbitrary: textMutationArb(Object.keys(valid.body)), weight: 1 }),
    contentType: contentTypeArb,
  }),
);

/** Query-string values: plausible ones, limits, and garbage (`raw` values are sent unencoded). */
const paramValueArb: fc.Arbitrary<{ value: string; raw: boolean }> = fc.oneof(
  {
    arbitrary: fc.constantFrom("", "0", "1", "7", "100", "1000", "1001", "-1", "1.5", "1e3", "1e400", "9007199254740993", "abc", "prepared", "submitted", "succeed",
      "saga", "msg", "SAGA", "t1", "topics", "http://127.0.0.1:1/x", "topic://t1", "x".repeat(5000)).map((value) => ({ value, raw: false })),
    weight: 6,
  },
  { arbitrary: fc.constantFrom("%zz", "%", "%00", "%E0%A4%A", "a%20b", "%2F..%2F").map((value) => ({ value, raw: true })), weight: 1 },
  { arbitrary: badGidArb.map((value) => ({ value, raw: false })), weight: 2 },
  { arbitrary: fc.nat().map((i) => ({ value: `@gid${i}`, raw: false })), weight: 3 },
);

interface GetCase {
  kind: "get";
  method: "GET" | "DELETE" | "POST";
  path: string;
  params: [string, { value: string; raw: boolean }][];
  body: unknown;
}

const GET_ROUTES: Record<string, string[]> = {
  "/api/dtmsvr/query": ["gid"],
  "/api/dtmsvr/all": ["gid", "limit", "position", "status", "transType", "createTimeStart", "createTimeEnd"],
  "/api/dtmsvr/scanKV": ["cat", "position", "limit"],
  "/api/dtmsvr/queryKV": ["cat", "key"],
  "/api/dtmsvr/subscribe": ["topic", "url", "remark"],
  "/api/dtmsvr/unsubscribe": ["topic", "url"],
  "/api/dtmsvr/resetCronTime": ["timeout", "limit"],
  "/api/dtmsvr/newGid": [],
  "/api/dtmsvr/version": [],
  "/api/ping": [],
  "/api/dtx/health": [],
  "/api/metrics": [],
  "/": [],
  "/admin": [],
  "/admin/": [],
  "/admin/app.js": [],
  "/admin/style.css": [],
};

const getCaseArb: fc.Arbitrary<GetCase> = fc.oneof(
  {
    arbitrary: fc.constantFrom(...Object.keys(GET_ROUTES)).chain((path) =>
      fc.record({
        kind: fc.constant("get" as const),
        method: fc.constant("GET" as const),
        path: fc.constant(path),
        params: fc.array(fc.tuple(fc.constantFrom(...(GET_ROUTES[path] ?? []), "extra", "gid"), paramValueArb), { maxLength: 4 }),
        body: fc.constant(undefined),
      }),
    ),
    weight: 12,
  },
  {
    // DELETE /topic/:name, with names a router must survive.
    arbitrary: fc.record({
      kind: fc.constant("get" as const),
      method: fc.constant("DELETE" as const),
      path: fc.oneof(fc.constantFrom("t1", "nobody", "%zz", "a%2Fb", "..", "x".repeat(200), "%00"), fc.string({ maxLength: 12 }).map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, "")))).map((n) => `/api/dtmsvr/topic/${n}`),
      params: fc.constant<GetCase["params"]>([]),
      body: fc.constant(undefined),
    }),
    weight: 1,
  },
  {
    // The test clock and cron: advanceMs at and past its range.
    arbitrary: fc.record({
      kind: fc.constant("get" as const),
      method: fc.constant("POST" as const),
      path: fc.constantFrom("/api/dtx/test/clock", "/api/dtx/test/cron"),
      params: fc.constant<GetCase["params"]>([]),
      body: fc.oneof(fc.constantFrom(0, 1000, 60_000, 31_536_000_000, 31_536_000_001, 1e13, 1e308, -1).map((advanceMs) => ({ advanceMs })), weirdValueArb.map((advanceMs) => ({ advanceMs }))),
    }),
    weight: 1,
  },
  {
    // Routes that do not exist, and body routes with the wrong method.
    arbitrary: fc.record({
      kind: fc.constant("get" as const),
      method: fc.constantFrom("GET" as const, "DELETE" as const),
      path: fc.oneof(fc.constantFrom("/api/dtmsvr/submit", "/api/dtmsvr/registerBranch", "/api/json-rpc", "/api/nope", "/api/dtmsvr/", "/api/dtmsvr/%zz", "//api//ping", `/api/${"x".repeat(3000)}`),
        fc.string({ unit: fc.constantFrom(..."abz019/-_.%"), maxLength: 30 }).map((s) => `/api/${s}`)),
      params: fc.constant<GetCase["params"]>([]),
      body: fc.constant(undefined),
    }),
    weight: 1,
  },
);

interface HeaderCase {
  kind: "headers";
  bytes: number;
}

/** Built once the dead port is known (valid bodies point branches at it). */
const caseArb = (): fc.Arbitrary<BodyCase | GetCase | HeaderCase> => fc.oneof(
  { arbitrary: bodyCaseArb(), weight: 14 },
  { arbitrary: getCaseArb, weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant("headers" as const), bytes: fc.constantFrom(8_000, 17_000, 40_000) }), weight: 1 },
);

// ---------------------------------------------------------------------------------------------
// Running a case

interface Reply {
  status: number;
  contentType: string;
  text: string;
}

async function send(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<Reply> {
  const res = await request(`${dtx.url}${path}`, { method: method as "GET", headers, body, dispatcher: agent });
  const text = await res.body.text();
  stats.requests += 1;
  return { status: res.statusCode, contentType: String(res.headers["content-type"] ?? ""), text };
}

/** Checks what every answer must satisfy and returns its stable code ("" for a 2xx/3xx). */
function checkReply(r: Reply, what: string): string {
  expect(r.status, `${what}: ${r.status} ${r.text.slice(0, 300)}`).toBeLessThan(500);
  if (r.status < 400) {
    stats.count(String(r.status));
    return "";
  }
  expect(r.contentType, `${what}: ${r.text.slice(0, 200)}`).toMatch(/^application\/json/);
  const body = JSON.parse(r.text) as { code?: unknown; message?: unknown };
  const code = String(body.code);
  const spec = DOCUMENTED_CODES[code];
  expect(spec, `${what}: undocumented code ${code}: ${r.text.slice(0, 300)}`).toBeDefined();
  expect(r.status, `${what}: ${code} with status ${r.status}`).toBe(spec?.httpStatus);
  expect(typeof body.message).toBe("string");
  expect(String(body.message).length, `${what}: message of ${String(body.message).length} characters`).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  stats.count(code);
  return code;
}

/** Percent-encodes the UTF-8 bytes of any string (lone surrogates included, which encodeURIComponent refuses). */
function pct(s: string): string {
  return [...Buffer.from(s, "utf8")].map((b) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, "0").toUpperCase()}`)).join("");
}

let counter = 0;

async function runBodyCase(batch: number, c: BodyCase): Promise<void> {
  counter += 1;
  const fresh = `fzh-${FUZZ_SEED}-${batch}-${counter}`;
  const held = ledger.list;
  const gid = c.valid.reuse && held.length > 0 ? held[counter % held.length] ?? fresh : fresh;
  const obj: JsonObject = { gid, ...structuredClone(c.valid.body) };
  for (const m of c.mutations) applyObjMutation(obj, m, held);
  let text = encodeJson(obj);
  if (c.text) text = applyTextMutation(text, c.text);
  const op: BodyOp = c.valid.op;
  const route = op === "registerBranch" ? REGISTER_ROUTES[c.route] ?? op : op;
  const seenGid = fieldIn(text, "gid");
  const branchesBefore = op === "registerBranch" && typeof seenGid === "string" && ledger.gids.has(seenGid) ? ledger.branches(seenGid) : -1;

  const r = await send("POST", `/api/dtmsvr/${route}`, text, c.contentType === null ? {} : { "content-type": c.contentType });
  const what = `${route} ${text.slice(0, 200)}`;
  const code = checkReply(r, what);
  const written = r.status < 300 || code === "FAILURE" || code === "ONGOING";
  ledger.afterRequest(seenGid, CREATING_OPS.has(op) && written, what);
  if (branchesBefore >= 0 && r.status >= 300) {
    expect(ledger.branches(String(seenGid)), `${what}: refused (${code}) but branch rows changed`).toBe(branchesBefore);
  }
}

async function runGetCase(c: GetCase): Promise<void> {
  const held = ledger.list;
  const query = c.params
    .map(([k, v]) => {
      const value = v.value.startsWith("@gid") ? held[Number(v.value.slice(4)) % Math.max(1, held.length)] ?? "none" : v.value;
      return `${k}=${v.raw ? value : pct(value)}`;
    })
    .join("&");
  const path = query ? `${c.path}?${query}` : c.path;
  const body = c.body === undefined ? undefined : encodeJson(c.body as JsonObject);
  const r = await send(c.method, path, body, body === undefined ? {} : { "content-type": "application/json" });
  checkReply(r, `${c.method} ${path.slice(0, 200)}`);
  // A read never writes: a gid it names that nobody created stays absent.
  for (const [k, v] of c.params) if (k === "gid" && !v.raw) ledger.afterRequest(v.value, false, `${c.method} ${path.slice(0, 200)}`);
}

async function runHeaderCase(c: HeaderCase): Promise<void> {
  // A fresh connection: the server closes it after a 431.
  const res = await request(`${dtx.url}/api/ping`, { headers: { "x-big": "b".repeat(c.bytes) }, reset: true });
  const text = await res.body.text();
  stats.requests += 1;
  checkReply({ status: res.statusCode, contentType: String(res.headers["content-type"] ?? ""), text }, `headers of ${c.bytes} bytes`);
}

function runCase(batch: number, c: BodyCase | GetCase | HeaderCase): Promise<void> {
  if (c.kind === "body") return runBodyCase(batch, c);
  if (c.kind === "get") return runGetCase(c);
  return runHeaderCase(c);
}

describe(`fuzzing every HTTP route (seed ${FUZZ_SEED}, ${BATCHES} x ${RUNS_PER_BATCH} runs)`, () => {
  for (let batch = 0; batch < BATCHES; batch++) {
    it(`batch ${batch}: no 5xx, documented codes, nothing written on refusal, everything accepted reads back`, { timeout: 300_000 }, async () => {
      await fc.assert(fc.asyncProperty(caseArb(), (c) => runCase(batch, c)), { seed: FUZZ_SEED + batch, numRuns: RUNS_PER_BATCH });
      stats.requests += await ledger.verify(PAGE_SIZES[batch % PAGE_SIZES.length] ?? 100);
    });
  }

  it("sent the requests it promised and reached every answer the mutations aim at", () => {
    process.stdout.write(`[fuzz] ${FILE}: ${stats.summary()}\n`);
    expect(stats.requests).toBeGreaterThanOrEqual(BATCHES * RUNS_PER_BATCH);
    const aimed = [
      "200", "INVALID_JSON", "INVALID_REQUEST", "INVALID_GID", "INVALID_TRANS_TYPE", "UNSUPPORTED_TRANS_TYPE", "INVALID_URL", "INVALID_PAYLOADS",
      "INVALID_ORDERS", "INVALID_OPTIONS", "TOO_MANY_BRANCHES", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "INVALID_BRANCH", "TRANS_NOT_FOUND",
      "ROUTE_NOT_FOUND", "HEADERS_TOO_LARGE", "FAILURE",
    ];
    expect(aimed.filter((code) => !stats.outcomes.has(code)), stats.summary()).toEqual([]);
  });
});
