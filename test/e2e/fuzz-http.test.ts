import { createServer } from "node:net";
import fc from "fast-check";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

/**
 * fast-check over real HTTP (RELIABILITY §7.6): valid saga submits, mutated at the object level
 * (dropped fields, wrong types, huge numbers, deep nesting, unicode, too many steps, big payloads)
 * and then at the text level (truncation, garbage, duplicate keys, BOM, bad number tokens,
 * oversized bodies), with a random Content-Type now and then. The oracle:
 * - the status is one dtm's clients understand: 200, 400, 404, 409, 413, 415 or 425, never a 5xx;
 * - every non-200 body is JSON with a string `code`;
 * - a refused request wrote nothing for its gid, and after each batch the coordinator holds exactly
 *   the transactions that were accepted (so no stray or partial rows), and still answers /api/ping.
 *
 * Batch b runs with seed SEED + b; fast-check prints that seed, the shrink path and the smallest
 * counterexample on failure. Batches share the coordinator (a mutation may resubmit an earlier gid),
 * so reproduce by running the whole file with DTX_FUZZ_SEED=<SEED> (and optionally
 * DTX_FUZZ_RUNS=<runs per batch>, default 260: about 2,300 requests in 5-10 s on 2 cores).
 */

const SEED = Number(process.env["DTX_FUZZ_SEED"] ?? 20_251_123);
const RUNS_PER_BATCH = Number(process.env["DTX_FUZZ_RUNS"] ?? 260);
const BATCHES = 6;

const MAX_BRANCHES = 20;
const MAX_PAYLOAD_BYTES = 2048;
const MAX_BODY_BYTES = 64 * 1024;
const ALLOWED_STATUSES = [200, 400, 404, 409, 413, 415, 425];
const GID_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;
const DEEP = "__DTX_FUZZ_DEEP__";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

let dtx: TestCoordinator;
let deadPort = 0;

/** A port nothing listens on: bound, then released. */
async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  deadPort = await unusedPort();
  dtx = await startCoordinator({ maxBranches: MAX_BRANCHES, maxPayloadBytes: MAX_PAYLOAD_BYTES, maxBodyBytes: MAX_BODY_BYTES });
});
afterAll(async () => {
  await dtx?.stop();
});

// ---------------------------------------------------------------------------------------------
// Valid bodies

/** Branch URLs that call nothing ("") or a port where nothing listens, so no test depends on a participant. */
const urlArb = fc.constantFrom("", "", "", "dead:/a", "dead:/b?x=1");

function realUrl(url: string): string {
  return url.startsWith("dead:") ? `http://127.0.0.1:${deadPort}${url.slice("dead:".length)}` : url;
}

const payloadArb: fc.Arbitrary<string> = fc.oneof(
  fc.constant(""),
  fc.json({ maxDepth: 2 }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
);

/** A DAG over n steps: each edge goes from a lower step to a higher one. */
function ordersArb(n: number): fc.Arbitrary<string> {
  return fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: n * 2 }).map((edges) => {
    const orders: Record<string, number[]> = {};
    for (const [a, b] of edges) {
      if (a === b) continue;
      const [from, to] = a < b ? [a, b] : [b, a];
      const pre = (orders[String(to)] ??= []);
      if (!pre.includes(from)) pre.push(from);
    }
    return JSON.stringify({ concurrent: true, orders });
  });
}

const headerValueArb = fc.string({ unit: fc.constantFrom(..."abcXYZ019 -_/;=,\t"), maxLength: 16 });

const optionsArb = fc.record(
  {
    timeout_to_fail: fc.double({ min: 0, max: 3600, noNaN: true }),
    retry_interval: fc.double({ min: 0, max: 3600, noNaN: true }),
    request_timeout: fc.double({ min: 0, max: 5, noNaN: true }),
    retry_limit: fc.nat(10),
    concurrent: fc.boolean(),
    branch_headers: fc.dictionary(fc.constantFrom("X-A", "X-Trace-Id", "Authorization", "x-tenant"), headerValueArb, { maxKeys: 3 }),
    rollback_reason: fc.string({ maxLength: 20 }),
  },
  { requiredKeys: [] },
);

const validSagaArb: fc.Arbitrary<JsonObject> = fc.integer({ min: 0, max: 4 }).chain((n) =>
  fc
    .record({
      steps: fc.array(fc.record({ action: urlArb, compensate: urlArb }), { minLength: n, maxLength: n }),
      payloads: fc.array(payloadArb, { minLength: n, maxLength: n }),
      options: optionsArb,
      customData: n > 1 ? fc.option(ordersArb(n), { nil: undefined }) : fc.constant(undefined),
    })
    .map(({ steps, payloads, options, customData }) => {
      const body: JsonObject = {
        trans_type: "saga",
        steps: steps.map((s) => ({ action: realUrl(s.action), compensate: realUrl(s.compensate) })),
        payloads,
        wait_result: false,
        ...(options as JsonObject),
      };
      if (customData !== undefined) body["custom_data"] = customData;
      return body;
    }),
);

// ---------------------------------------------------------------------------------------------
// Mutations: small descriptors (so counterexamples print small), applied by the property.

const FIELD_PATHS: (string | number)[][] = [
  ["gid"], ["trans_type"], ["steps"], ["steps", 0], ["steps", 0, "action"], ["steps", 0, "compensate"], ["steps", 1, "action"],
  ["payloads"], ["payloads", 0], ["custom_data"], ["wait_result"], ["timeout_to_fail"], ["retry_interval"], ["request_timeout"],
  ["retry_limit"], ["retry_count"], ["concurrent"], ["branch_headers"], ["branch_headers", "X-A"], ["protocol"],
  ["query_prepared"], ["rollback_reason"], ["req_extra"], ["__proto__"], ["constructor"],
];

const weirdValueArb: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null, true, false, 0, -1, -0.5, 1.5, 1e308, -1e308, 2 ** 31, 2 ** 53 + 2, "", "NaN", "Infinity", "1e308", "true", "0",
    [], {}, [""], { a: "b" }, ["http://h/a"], "ftp://x", "http://", "not a url", "\u0000", "a\r\nb", "\u{1F600}", "\uD800",
    "'; DROP TABLE trans_global; --", "x".repeat(1025), "saga", "msg", "tcc", "xa", "workflow", "SAGA", "grpc", "json-rpc",
    '{"concurrent":true,"orders":{"0":[0]}}', '{"orders":{"1":[0],"0":[1]}}', "{not json",
  ),
  fc.integer(),
  fc.double(),
  fc.string({ unit: "binary", maxLength: 24 }),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
);

const badGidArb = fc.oneof(
  fc.constantFrom("a".repeat(129), "bad gid", 'bad"gid', "bad;gid", "bad\ngid", "bäd", "bad\u0000gid", "--", "a/b", "%41", "Az09_.:-".repeat(16)),
  fc.string({ unit: "binary", minLength: 1, maxLength: 140 }),
);

type ObjMutation =
  | { kind: "drop"; key: string }
  | { kind: "set"; path: (string | number)[]; value: Json }
  | { kind: "deep"; path: (string | number)[]; depth: number; array: boolean }
  | { kind: "gid"; value: string }
  | { kind: "reuseGid"; index: number }
  | { kind: "manySteps"; count: number }
  | { kind: "bigPayload"; bytes: number }
  | { kind: "dropPayload" }
  | { kind: "badUrl"; step: number; field: "action" | "compensate" | "query_prepared"; url: string }
  | { kind: "badOrders"; customData: string }
  | { kind: "waitResult" }
  | { kind: "extraKey"; key: string; value: Json };

const BAD_URLS = [
  "ftp://x", "not a url", "http://", "https://", "http://a b/x", "http://[::1", "http://h:99999/x", "javascript:alert(1)",
  "file:///etc/passwd", "/relative/path", "//h/x", "http://%zz/", `http://h/${"a".repeat(1020)}`, "HTTP://", " http://h/x",
];
const BAD_ORDERS = [
  '{"concurrent":true,"orders":{"0":[0]}}', '{"concurrent":true,"orders":{"0":[1],"1":[0]}}', '{"concurrent":true,"orders":{"1":[9]}}',
  '{"concurrent":true,"orders":{"9":[0]}}', '{"concurrent":true,"orders":{"01":[0]}}', '{"concurrent":true,"orders":{"1":"0"}}',
  '{"concurrent":true,"orders":[[0]]}', '{"concurrent":true,"orders":{"1":[0.5]}}', '{"concurrent":true,"orders":{"-1":[0]}}',
  "{not json", "[]", "1", '"x"', "null",
];

const objMutationArb: fc.Arbitrary<ObjMutation> = fc.oneof(
  fc.record({ kind: fc.constant("drop" as const), key: fc.constantFrom("gid", "trans_type", "steps", "payloads", "custom_data", "wait_result") }),
  fc.record({ kind: fc.constant("set" as const), path: fc.constantFrom(...FIELD_PATHS), value: weirdValueArb }),
  fc.record({ kind: fc.constant("deep" as const), path: fc.constantFrom(...FIELD_PATHS, ["extra"]), depth: fc.constantFrom(2, 64, 65, 1000, 2000, 2500), array: fc.boolean() }),
  fc.record({ kind: fc.constant("gid" as const), value: badGidArb }),
  fc.record({ kind: fc.constant("reuseGid" as const), index: fc.nat() }),
  fc.record({ kind: fc.constant("manySteps" as const), count: fc.integer({ min: MAX_BRANCHES / 2 - 1, max: MAX_BRANCHES / 2 + 2 }) }),
  fc.record({ kind: fc.constant("bigPayload" as const), bytes: fc.constantFrom(MAX_PAYLOAD_BYTES - 1, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1, 4 * MAX_PAYLOAD_BYTES) }),
  fc.constant({ kind: "dropPayload" as const }),
  fc.record({ kind: fc.constant("badUrl" as const), step: fc.nat(3), field: fc.constantFrom("action" as const, "compensate" as const, "query_prepared" as const), url: fc.constantFrom(...BAD_URLS) }),
  fc.record({ kind: fc.constant("badOrders" as const), customData: fc.constantFrom(...BAD_ORDERS) }),
  fc.constant({ kind: "waitResult" as const }),
  fc.record({ kind: fc.constant("extraKey" as const), key: fc.string({ maxLength: 12 }), value: weirdValueArb }),
);

type TextMutation =
  | { kind: "truncate"; at: number }
  | { kind: "insert"; at: number; text: string }
  | { kind: "replaceChar"; at: number; ch: string }
  | { kind: "duplicateKey"; key: string; value: Json }
  | { kind: "bom" }
  | { kind: "numberToken"; key: string; token: string }
  | { kind: "pad"; bytes: number };

const fraction = fc.double({ min: 0, max: 1, noNaN: true });
const textMutationArb: fc.Arbitrary<TextMutation> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fraction }),
  fc.record({ kind: fc.constant("insert" as const), at: fraction, text: fc.oneof(fc.string({ unit: "binary", maxLength: 8 }), fc.constantFrom(",", "}", "]", '"', "\\", "{", ":", "\u0000", "//", "/*")) }),
  fc.record({ kind: fc.constant("replaceChar" as const), at: fraction, ch: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) }),
  fc.record({ kind: fc.constant("duplicateKey" as const), key: fc.constantFrom("gid", "trans_type", "steps", "payloads", "wait_result"), value: weirdValueArb }),
  fc.constant({ kind: "bom" as const }),
  fc.record({ kind: fc.constant("numberToken" as const), key: fc.constantFrom("timeout_to_fail", "retry_limit", "wait_result", "gid"), token: fc.constantFrom("NaN", "Infinity", "-Infinity", "1e400", "-1e400", "0x10", "01", "1.", ".5", "+1", "-0", "1e-400") }),
  fc.record({ kind: fc.constant("pad" as const), bytes: fc.constantFrom(MAX_BODY_BYTES - 1, MAX_BODY_BYTES, MAX_BODY_BYTES + 1, 2 * MAX_BODY_BYTES) }),
);

const contentTypeArb: fc.Arbitrary<string | null> = fc.oneof(
  { arbitrary: fc.constant("application/json"), weight: 24 },
  { arbitrary: fc.constantFrom("application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", "", null), weight: 1 },
);

const caseArb = fc.record({
  base: validSagaArb,
  objMutations: fc.array(objMutationArb, { maxLength: 3 }),
  textMutation: fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: textMutationArb, weight: 1 }),
  contentType: contentTypeArb,
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function setAt(obj: JsonObject, path: (string | number)[], value: Json): void {
  let node: Json = obj;
  for (const [i, key] of path.entries()) {
    if (node === null || typeof node !== "object") return;
    const last = i === path.length - 1;
    if (Array.isArray(node)) {
      if (typeof key !== "number" || key >= node.length) return;
      if (last) node[key] = value;
      else node = node[key] ?? null;
    } else {
      if (typeof key !== "string") return;
      if (last) Object.defineProperty(node, key, { value, enumerable: true, writable: true, configurable: true });
      else node = node[key] ?? null;
    }
  }
}

function applyObjMutation(obj: JsonObject, m: ObjMutation, accepted: readonly string[]): void {
  switch (m.kind) {
    case "drop":
      delete obj[m.key];
      return;
    case "set":
      setAt(obj, m.path, m.value);
      return;
    case "deep":
      setAt(obj, m.path, `${DEEP}${m.array ? "A" : "O"}${m.depth}`);
      return;
    case "gid":
      obj["gid"] = m.value;
      return;
    case "reuseGid":
      if (accepted.length > 0) obj["gid"] = accepted[m.index % accepted.length] ?? null;
      return;
    case "manySteps":
      obj["steps"] = Array.from({ length: m.count }, () => ({ action: "", compensate: "" }));
      obj["payloads"] = Array.from({ length: m.count }, () => "");
      delete obj["custom_data"];
      return;
    case "bigPayload":
      if (Array.isArray(obj["payloads"]) && obj["payloads"].length > 0) obj["payloads"][0] = "p".repeat(m.bytes);
      return;
    case "dropPayload":
      if (Array.isArray(obj["payloads"])) obj["payloads"].pop();
      return;
    case "badUrl":
      if (m.field === "query_prepared") obj["query_prepared"] = m.url;
      else setAt(obj, ["steps", m.step, m.field], m.url);
      return;
    case "badOrders":
      obj["custom_data"] = m.customData;
      return;
    case "waitResult":
      obj["wait_result"] = true;
      return;
    case "extraKey":
      setAt(obj, [m.key], m.value);
      return;
  }
}

/** JSON text, with each deep-nesting marker replaced by that many nested arrays or objects. */
function encode(obj: JsonObject): string {
  return JSON.stringify(obj).replace(new RegExp(`"${DEEP}([AO])(\\d+)"`, "g"), (_, shape: string, depth: string) => {
    const d = Number(depth);
    return shape === "A" ? `${"[".repeat(d)}1${"]".repeat(d)}` : `${'{"a":'.repeat(d)}1${"}".repeat(d)}`;
  });
}

function applyTextMutation(text: string, m: TextMutation): string {
  const at = (f: number): number => Math.min(text.length, Math.floor(f * (text.length + 1)));
  switch (m.kind) {
    case "truncate":
      return text.slice(0, at(m.at));
    case "insert":
      return text.slice(0, at(m.at)) + m.text + text.slice(at(m.at));
    case "replaceChar": {
      const i = Math.min(at(m.at), Math.max(0, text.length - 1));
      return text.slice(0, i) + m.ch + text.slice(i + 1);
    }
    case "duplicateKey":
      return text.endsWith("}") ? `${text.slice(0, -1)},${JSON.stringify(m.key)}:${JSON.stringify(m.value)}}` : text;
    case "bom":
      return `\uFEFF${text}`;
    case "numberToken":
      return text.endsWith("}") ? `${text.slice(0, -1)},${JSON.stringify(m.key)}:${m.token}}` : text;
    case "pad": {
      if (!text.startsWith("{")) return text + " ".repeat(Math.max(0, m.bytes - Buffer.byteLength(text)));
      const rest = text.slice(1);
      const skeleton = `{"pad":""${rest === "}" ? "" : ","}${rest}`;
      const fill = Math.max(0, m.bytes - Buffer.byteLength(skeleton));
      return `{"pad":"${"x".repeat(fill)}"${rest === "}" ? "" : ","}${rest}`;
    }
  }
}

/** The gid the server saw, if the text is JSON (the server strips a leading BOM, as here). */
function gidIn(text: string): { parsed: boolean; gid: string | undefined } {
  try {
    const value: unknown = JSON.parse(text.startsWith("\uFEFF") ? text.slice(1) : text);
    const gid = value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>)["gid"] : undefined;
    return { parsed: true, gid: typeof gid === "string" ? gid : undefined };
  } catch {
    return { parsed: false, gid: undefined };
  }
}

// ---------------------------------------------------------------------------------------------
// The property

interface Reply {
  status: number;
  contentType: string;
  text: string;
  json: unknown;
}

async function post(text: string, contentType: string | null): Promise<Reply> {
  const res = await request(`${dtx.url}/api/dtmsvr/submit`, {
    method: "POST",
    headers: contentType === null ? {} : { "content-type": contentType },
    body: text,
  });
  const body = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, contentType: String(res.headers["content-type"] ?? ""), text: body, json };
}

async function countAll(): Promise<number> {
  let total = 0;
  let position = "";
  for (;;) {
    const res = await request(`${dtx.url}/api/dtmsvr/all?limit=1000${position ? `&position=${position}` : ""}`);
    expect(res.statusCode).toBe(200);
    const page = (await res.body.json()) as { transactions: unknown[] | null; next_position: string };
    total += page.transactions?.length ?? 0;
    if (!page.next_position) return total;
    position = page.next_position;
  }
}

/** Every gid that holds a transaction now (accepted, or answered FAILURE / ONGOING after being written). */
const stored = new Set<string>();
const storedList: string[] = [];
const statusCounts = new Map<number, number>();
const codeCounts = new Map<string, number>();
let requests = 0;
let counter = 0;

function remember(gid: string | undefined): void {
  if (gid === undefined || stored.has(gid)) return;
  stored.add(gid);
  storedList.push(gid);
}

async function runCase(batch: number, c: Case): Promise<void> {
  counter += 1;
  const gid = `fz-${SEED}-${batch}-${counter}`;
  // A deep copy: mutations must never touch the generated value (fast-check replays and shrinks it).
  const obj: JsonObject = { gid, ...structuredClone(c.base) };
  for (const m of c.objMutations) applyObjMutation(obj, m, storedList);
  let text = encode(obj);
  if (c.textMutation) text = applyTextMutation(text, c.textMutation);

  const r = await post(text, c.contentType);
  requests += 1;
  statusCounts.set(r.status, (statusCounts.get(r.status) ?? 0) + 1);

  expect(ALLOWED_STATUSES, `status ${r.status}: ${r.text.slice(0, 300)}`).toContain(r.status);
  expect(r.contentType, r.text.slice(0, 300)).toMatch(/^application\/json/);
  const seen = gidIn(text);
  if (r.status === 200) {
    expect(r.json).toEqual({ dtm_result: "SUCCESS" });
    expect(seen.gid, "a 200 for a body whose gid this test cannot read").toBeDefined();
    remember(seen.gid);
    return;
  }
  const body = r.json as { code?: unknown; message?: unknown; dtm_result?: unknown } | undefined;
  expect(typeof body?.code, `non-200 without a string code: ${r.text.slice(0, 300)}`).toBe("string");
  expect(typeof body?.message).toBe("string");
  codeCounts.set(String(body?.code), (codeCounts.get(String(body?.code)) ?? 0) + 1);
  if (body?.code === "FAILURE" || body?.code === "ONGOING") {
    // A wire outcome (wait_result, or a repeat of a finished gid): the trans was written first.
    // (Every 409 carries dtm_result FAILURE; other 409 codes, such as TRANS_NOT_PREPARED for a
    // registerBranch of an unknown gid, are refusals that write nothing, checked below.)
    remember(seen.gid);
    return;
  }
  // Refused: nothing may exist for the gid the server saw, nor for the one we started from.
  const candidates = new Set([seen.gid, gid].filter((x): x is string => x !== undefined && GID_PATTERN.test(x) && !stored.has(x)));
  for (const candidate of candidates) {
    const q = await request(`${dtx.url}/api/dtmsvr/query?gid=${encodeURIComponent(candidate)}`);
    requests += 1;
    expect(q.statusCode).toBe(200);
    expect(await q.body.json(), `refused (${r.status} ${String(body?.code)}) but written: ${candidate}`).toEqual({ branches: [], transaction: null });
  }
}

describe(`fuzzing POST /api/dtmsvr/submit (seed ${SEED}, ${BATCHES} x ${RUNS_PER_BATCH} runs)`, () => {
  for (let batch = 0; batch < BATCHES; batch++) {
    it(`batch ${batch} (seed ${SEED + batch}): allowed statuses, JSON codes, no writes on refusal, still alive`, async () => {
      await fc.assert(
        fc.asyncProperty(caseArb, (c) => runCase(batch, c)),
        { seed: SEED + batch, numRuns: RUNS_PER_BATCH },
      );
      const ping = await request(`${dtx.url}/api/ping`);
      expect(ping.statusCode).toBe(200);
      expect(await ping.body.json()).toEqual({ msg: "pong" });
      // Exactly the accepted transactions exist: no stray or partial writes from refused requests.
      expect(await countAll()).toBe(stored.size);
    });
  }

  it.runIf(RUNS_PER_BATCH >= 100)("exercised the accept path and every refusal the mutations aim at", () => {
    expect(requests).toBeGreaterThan(BATCHES * RUNS_PER_BATCH);
    const summary = `statuses ${JSON.stringify(Object.fromEntries(statusCounts))}, codes ${JSON.stringify(Object.fromEntries(codeCounts))}`;
    for (const status of [200, 400, 409, 413, 415]) expect(statusCounts.get(status) ?? 0, summary).toBeGreaterThan(0);
    const aimed = [
      "INVALID_JSON", "INVALID_REQUEST", "INVALID_GID", "INVALID_TRANS_TYPE", "INVALID_URL", "INVALID_PAYLOADS", "INVALID_ORDERS",
      "INVALID_OPTIONS", "TOO_MANY_BRANCHES", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "FAILURE",
    ];
    expect(aimed.filter((code) => !codeCounts.has(code)), summary).toEqual([]);
  });
});
