import fc from "fast-check";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JSONRPC_FAILURE, JSONRPC_ONGOING } from "../../server/src/driver/jsonrpc-invoker.ts";
import type { ValidCase } from "../helpers/fuzz-bodies.ts";
import { COMMON_PATHS, CREATING_OPS, pathsOf, validCaseArb } from "../helpers/fuzz-bodies.ts";
import type { Json, JsonObject, ObjMutation, TextMutation } from "../helpers/fuzz.ts";
import {
  announceSeed, applyObjMutation, applyTextMutation, deepMarkerArb, DOCUMENTED_CODES, encodeJson, FUZZ_SCALE, FUZZ_SEED, FuzzLedger,
  FuzzStats, MAX_MESSAGE_CHARS, objMutationArb, textMutationArb, unusedPort, weirdValueArb,
} from "../helpers/fuzz.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

/**
 * fast-check over every JSON-RPC method on POST /api/json-rpc (newGid, prepare, submit, abort,
 * registerBranch) and names that are not methods: valid params mutated as in fuzz-http, the
 * envelope mutated too (id, jsonrpc, method of any type and depth), and the text mangled.
 *
 * Oracle: HTTP 200, or 400 for -32700; never -32603 (a client's request is never an internal
 * fault); every error has a documented stable code in `error.data.code` (FAILURE and ONGOING have
 * their own numeric codes) and a bounded message; nothing written for a refusal; every accepted
 * transaction reads back through /query and /all.
 *
 * Replay: DTX_FUZZ_SEED=<seed> npx vitest run test/e2e/fuzz-json-rpc.test.ts
 */

const FILE = "test/e2e/fuzz-json-rpc.test.ts";
const BATCHES = 5;
const RUNS_PER_BATCH = Math.round(1000 * FUZZ_SCALE);
const MAX_BRANCHES = 20;
const MAX_PAYLOAD_BYTES = 2048;
const MAX_BODY_BYTES = 64 * 1024;
const RPC_METHODS = new Set(["prepare", "submit", "abort", "registerBranch"]);

let dtx: TestCoordinator;
let ledger: FuzzLedger;
let deadPort = 0;
const agent = new Agent({ connections: 8, keepAliveTimeout: 60_000 });
const stats = new FuzzStats();

beforeAll(async () => {
  announceSeed(FILE);
  deadPort = await unusedPort();
  dtx = await startCoordinator({ maxBranches: MAX_BRANCHES, maxPayloadBytes: MAX_PAYLOAD_BYTES, maxBodyBytes: MAX_BODY_BYTES });
  ledger = new FuzzLedger(dtx);
});
afterAll(async () => {
  await ledger?.close();
  await agent.close();
  await dtx?.stop();
});

type Envelope =
  | { kind: "valid" }
  | { kind: "id"; value: Json }
  | { kind: "jsonrpc"; value: Json }
  | { kind: "method"; value: Json }
  | { kind: "deepMethod"; marker: string }
  | { kind: "params"; value: Json };

interface RpcCase {
  valid: ValidCase;
  /** newGid instead of the valid case's operation. */
  newGid: boolean;
  mutations: ObjMutation[];
  envelope: Envelope;
  text: TextMutation | undefined;
}

const envelopeArb: fc.Arbitrary<Envelope> = fc.oneof(
  { arbitrary: fc.constant({ kind: "valid" as const }), weight: 12 },
  fc.record({ kind: fc.constant("id" as const), value: weirdValueArb }),
  fc.record({ kind: fc.constant("jsonrpc" as const), value: fc.oneof(weirdValueArb, fc.constantFrom<Json>("1.0", "2", 2, "2.0 ")) }),
  fc.record({
    kind: fc.constant("method" as const),
    value: fc.oneof(weirdValueArb, fc.constantFrom<Json>("query", "prepareWorkflow", "forceStop", "constructor", "__proto__", "toString", "SUBMIT", "x".repeat(70_000))),
  }),
  fc.record({ kind: fc.constant("deepMethod" as const), marker: deepMarkerArb }),
  fc.record({ kind: fc.constant("params" as const), value: weirdValueArb }),
);

const caseArb = (): fc.Arbitrary<RpcCase> =>
  validCaseArb({ maxBranches: MAX_BRANCHES, maxPayloadBytes: MAX_PAYLOAD_BYTES, deadPort })
    .filter((v) => RPC_METHODS.has(v.op))
    .chain((valid) =>
      fc.record({
        valid: fc.constant(valid),
        newGid: fc.integer({ min: 1, max: 40 }).map((x) => x === 1),
        mutations: fc.oneof({ arbitrary: fc.constant<ObjMutation[]>([]), weight: 1 }, { arbitrary: fc.array(objMutationArb([...pathsOf(valid.body), ...COMMON_PATHS]), { minLength: 1, maxLength: 3 }), weight: 3 }),
        envelope: envelopeArb,
        text: fc.oneof({ arbitrary: fc.constant(undefined), weight: 6 }, { arbitrary: textMutationArb(["id", "jsonrpc", "method", "params"]), weight: 1 }),
      }),
    );

interface RpcReply {
  error: { code: number; message: string; data?: { code?: string } } | null;
  result: unknown;
}

let counter = 0;

async function runCase(batch: number, c: RpcCase): Promise<void> {
  counter += 1;
  const fresh = `fzr-${FUZZ_SEED}-${batch}-${counter}`;
  const held = ledger.list;
  const gid = c.valid.reuse && held.length > 0 ? held[counter % held.length] ?? fresh : fresh;
  const params: JsonObject = { gid, ...structuredClone(c.valid.body) };
  for (const m of c.mutations) applyObjMutation(params, m, held);
  const method = c.newGid ? "newGid" : c.valid.op;
  const envelope: JsonObject = { jsonrpc: "2.0", id: `r${counter}`, method, params };
  const e = c.envelope;
  if (e.kind === "id" || e.kind === "jsonrpc" || e.kind === "method" || e.kind === "params") envelope[e.kind] = e.value;
  if (e.kind === "deepMethod") envelope["method"] = e.marker;
  let text = encodeJson(envelope);
  if (c.text) text = applyTextMutation(text, c.text);

  const res = await request(`${dtx.url}/api/json-rpc`, { method: "POST", headers: { "content-type": "application/json" }, body: text, dispatcher: agent });
  const raw = await res.body.text();
  stats.requests += 1;
  const what = `json-rpc ${text.slice(0, 200)}: ${res.statusCode} ${raw.slice(0, 300)}`;
  expect(res.statusCode, what).toBeLessThan(500);

  // What the server saw, to know which gid a refusal must not have written.
  let seen: Record<string, unknown> | undefined;
  try {
    const v: unknown = JSON.parse(text.startsWith("\uFEFF") ? text.slice(1) : text);
    seen = v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    seen = undefined;
  }
  const seenParams = seen?.["params"];
  const seenGid = seenParams !== null && typeof seenParams === "object" && !Array.isArray(seenParams) ? (seenParams as Record<string, unknown>)["gid"] : undefined;
  const seenMethod = typeof seen?.["method"] === "string" ? seen["method"] : "";

  if (res.statusCode !== 200) {
    // Auth is off, so only a body that is not a JSON-RPC request at all (-32700) or an HTTP-level
    // refusal (too large) is a non-200.
    const body = JSON.parse(raw) as RpcReply & { code?: string };
    const code = body.error?.data?.code ?? body.code ?? "";
    expect(DOCUMENTED_CODES[code], what).toBeDefined();
    stats.count(`http ${res.statusCode} ${code}`);
    ledger.afterRequest(seenGid, false, what);
    return;
  }
  const reply = JSON.parse(raw) as RpcReply;
  if (reply.error === null) {
    stats.count(`ok ${seenMethod}`);
    ledger.afterRequest(seenGid, CREATING_OPS.has(seenMethod), what);
    return;
  }
  const { code, message, data } = reply.error;
  expect(code, `${what}: -32603 for a client's request`).not.toBe(-32603);
  expect(message.length, what).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  if (code === JSONRPC_FAILURE || code === JSONRPC_ONGOING) {
    stats.count(code === JSONRPC_FAILURE ? "FAILURE" : "ONGOING");
    ledger.afterRequest(seenGid, CREATING_OPS.has(seenMethod), what);
    return;
  }
  expect([-32700, -32600, -32601, -32602], what).toContain(code);
  expect(DOCUMENTED_CODES[data?.code ?? ""], `${what}: error without a documented data.code`).toBeDefined();
  stats.count(`${code} ${data?.code ?? ""}`);
  ledger.afterRequest(seenGid, false, what);
}

describe(`fuzzing every JSON-RPC method (seed ${FUZZ_SEED}, ${BATCHES} x ${RUNS_PER_BATCH} runs)`, () => {
  for (let batch = 0; batch < BATCHES; batch++) {
    it(`batch ${batch}: never -32603 or a 5xx, documented codes, nothing written on refusal, everything accepted reads back`, { timeout: 300_000 }, async () => {
      await fc.assert(fc.asyncProperty(caseArb(), (c) => runCase(batch, c)), { seed: FUZZ_SEED + 1000 + batch, numRuns: RUNS_PER_BATCH });
      stats.requests += await ledger.verify([1000, 3, 50][batch % 3] ?? 100);
    });
  }

  it("sent the requests it promised and reached every kind of answer", () => {
    process.stdout.write(`[fuzz] ${FILE}: ${stats.summary()}\n`);
    expect(stats.requests).toBeGreaterThanOrEqual(BATCHES * RUNS_PER_BATCH);
    const aimed = ["ok submit", "ok prepare", "ok newGid", "FAILURE", "http 400 INVALID_JSON", "-32600 INVALID_REQUEST", "-32601 ROUTE_NOT_FOUND", "-32602 INVALID_GID", "-32602 INVALID_OPTIONS"];
    expect(aimed.filter((k) => !stats.outcomes.has(k)), stats.summary()).toEqual([]);
  });
});
