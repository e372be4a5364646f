import { status } from "@grpc/grpc-js";
import type { MethodDefinition } from "@grpc/proto-loader";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadDtmProto } from "../../server/src/api/grpc/proto.ts";
import { DtmGrpcClient } from "../busi/grpc-busi.ts";
import type { ValidCase } from "../helpers/fuzz-bodies.ts";
import { CREATING_OPS, validCaseArb } from "../helpers/fuzz-bodies.ts";
import type { Json, JsonObject } from "../helpers/fuzz.ts";
import {
  absurdNumberArb, announceSeed, badGidArb, deepJson, DOCUMENTED_CODES, FUZZ_SCALE, FUZZ_SEED, FuzzLedger, FuzzStats, MAX_MESSAGE_CHARS, unusedPort,
} from "../helpers/fuzz.ts";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";

/**
 * fast-check over every method of `dtmgimp.Dtm` (NewGid, Submit, Prepare, Abort, RegisterBranch,
 * PrepareWorkflow, Subscribe, Unsubscribe, DeleteTopic): valid requests built from the same bodies
 * as the HTTP fuzzer, mutated field by field with values of the right protobuf type (bad gids,
 * oversized and NUL-laden strings, Steps and CustomedData JSON that is deep, broken or absurd,
 * int64 times past every limit, forbidden branch headers, payload counts that do not match), and
 * then, now and then, at the byte level (truncated, flipped, padded messages).
 *
 * Oracle: never INTERNAL or UNKNOWN; every error carries a documented `dtx-code` whose gRPC code
 * is the status, and a bounded message; nothing written for a refusal; every accepted transaction
 * reads back through HTTP /query and /all.
 *
 * Replay: DTX_FUZZ_SEED=<seed> npx vitest run test/e2e/fuzz-grpc.test.ts
 */

const FILE = "test/e2e/fuzz-grpc.test.ts";
const BATCHES = 5;
const RUNS_PER_BATCH = Math.round(1000 * FUZZ_SCALE);
const MAX_BRANCHES = 20;
const MAX_PAYLOAD_BYTES = 2048;

let dtx: TestCoordinator;
let ledger: FuzzLedger;
let client: DtmGrpcClient;
let deadPort = 0;
const stats = new FuzzStats();
const methods = loadDtmProto()["dtmgimp.Dtm"] as Record<string, MethodDefinition<unknown, unknown>>;

beforeAll(async () => {
  announceSeed(FILE);
  deadPort = await unusedPort();
  dtx = await startCoordinator({ maxBranches: MAX_BRANCHES, maxPayloadBytes: MAX_PAYLOAD_BYTES });
  ledger = new FuzzLedger(dtx);
  client = new DtmGrpcClient(`127.0.0.1:${dtx.grpcPort}`);
});
afterAll(async () => {
  client?.close();
  await ledger?.close();
  await dtx?.stop();
});

const GRPC_OP: Record<string, string> = {
  submit: "Submit", prepare: "Prepare", abort: "Abort", registerBranch: "RegisterBranch", prepareWorkflow: "PrepareWorkflow",
};

type ProtoValue = string | number | boolean | Buffer | Buffer[] | Record<string, string> | ProtoObject | null;
interface ProtoObject {
  [key: string]: ProtoValue;
}

/** A DtmRequest / DtmBranchRequest as dtm's gRPC clients fill it from the HTTP-shaped body. */
function toProto(op: string, gid: string, body: JsonObject): ProtoObject {
  const str = (v: Json | undefined): string => (typeof v === "string" ? v : "");
  if (op === "registerBranch") {
    const data: Record<string, string> = {};
    for (const k of ["confirm", "cancel", "url", "op", "status"]) if (typeof body[k] === "string") data[k] = body[k];
    return { Gid: gid, TransType: str(body["trans_type"]), BranchID: str(body["branch_id"]), Op: str(body["op"]), Data: data, BusiPayload: Buffer.from(str(body["data"])) };
  }
  const steps = body["steps"];
  const payloads = Array.isArray(body["payloads"]) ? body["payloads"].map((p) => Buffer.from(typeof p === "string" ? p : "")) : [];
  const headers = body["branch_headers"];
  const reqExtra = body["req_extra"];
  return {
    Gid: gid,
    TransType: str(body["trans_type"]),
    Steps: Array.isArray(steps) ? JSON.stringify(steps) : "",
    BinPayloads: payloads,
    CustomedData: str(body["custom_data"]),
    QueryPrepared: str(body["query_prepared"]),
    RollbackReason: str(body["rollback_reason"]),
    ReqExtra: reqExtra && typeof reqExtra === "object" && !Array.isArray(reqExtra) ? (reqExtra as Record<string, string>) : {},
    TransOptions: {
      WaitResult: body["wait_result"] === true,
      TimeoutToFail: Math.round(Number(body["timeout_to_fail"] ?? 0)),
      RetryInterval: Math.round(Number(body["retry_interval"] ?? 0)),
      RequestTimeout: Math.round(Number(body["request_timeout"] ?? 0)),
      RetryLimit: Math.round(Number(body["retry_limit"] ?? 0)),
      BranchHeaders: headers && typeof headers === "object" && !Array.isArray(headers) ? (headers as Record<string, string>) : {},
    },
  };
}

const weirdStringArb: fc.Arbitrary<string> = fc.oneof(
  badGidArb,
  fc.constantFrom("", "saga", "msg", "tcc", "xa", "workflow", "SAGA", "{not json", "[]", "null", '[{"action":1}]', '[{"action":"ftp://x"}]',
    '{"delay":1e13}', '{"Delay":-1}', '{"delay":31536001}', '{"concurrent":true,"orders":{"0":[0]}}', "http://u:pw@127.0.0.1:1/x?api_key=k",
    "topic://", "topic://nobody", "x".repeat(70_000), "\u0000", "prepared", "succeed"),
  fc.constantFrom(5000, 20_000).map((d) => deepJson(d, true)),
  fc.constantFrom(5000).map((d) => `[{"action":${deepJson(d, false)}}]`),
  fc.string({ unit: "binary", maxLength: 24 }),
);

/** int64 values (as JS numbers) at and past every documented limit. */
const int64Arb: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(-1, 0, 1, 31_536_000, 31_536_001, 2_147_483, 2_147_484, 1_000_000, 1_000_001, 1e13, 2 ** 53, -(2 ** 53), 8.64e15),
  absurdNumberArb.map((n) => Math.max(-(2 ** 62), Math.min(2 ** 62, Math.trunc(n)))),
);

type FieldMutation =
  | { kind: "string"; field: string; value: string }
  | { kind: "option"; field: string; value: number }
  | { kind: "header"; name: string; value: string }
  | { kind: "extra"; name: string; value: string }
  | { kind: "payloads"; count: number; bytes: number }
  | { kind: "reuseGid"; index: number };

const fieldMutationArb: fc.Arbitrary<FieldMutation> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("string" as const), field: fc.constantFrom("Gid", "TransType", "Steps", "CustomedData", "QueryPrepared", "RollbackReason", "BranchID", "Op"), value: weirdStringArb }), weight: 5 },
  { arbitrary: fc.record({ kind: fc.constant("option" as const), field: fc.constantFrom("TimeoutToFail", "RetryInterval", "RequestTimeout", "RetryLimit"), value: int64Arb }), weight: 3 },
  fc.record({ kind: fc.constant("header" as const), name: fc.constantFrom("Host", "X-A", "x a", "Content-Length", "", "x".repeat(9000)), value: fc.constantFrom("v", "a\r\nb", "\u20AC", "\u0000", "x".repeat(9000)) }),
  fc.record({ kind: fc.constant("extra" as const), name: fc.constantFrom("status", "x", "x".repeat(200)), value: weirdStringArb }),
  fc.record({ kind: fc.constant("payloads" as const), count: fc.nat(12), bytes: fc.constantFrom(0, 10, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1) }),
  { arbitrary: fc.record({ kind: fc.constant("reuseGid" as const), index: fc.nat() }), weight: 2 },
);

function applyFieldMutation(msg: ProtoObject, m: FieldMutation, held: readonly string[]): void {
  const options = (msg["TransOptions"] ?? null) as ProtoObject | null;
  switch (m.kind) {
    case "string":
      if (m.field in msg) msg[m.field] = m.value;
      return;
    case "option":
      if (options) options[m.field] = m.value;
      return;
    case "header":
      if (options) options["BranchHeaders"] = { ...(options["BranchHeaders"] as Record<string, string>), [m.name]: m.value };
      return;
    case "extra": {
      const key = "ReqExtra" in msg ? "ReqExtra" : "Data";
      msg[key] = { ...((msg[key] ?? {}) as Record<string, string>), [m.name]: m.value };
      return;
    }
    case "payloads":
      if ("BinPayloads" in msg) msg["BinPayloads"] = Array.from({ length: m.count }, () => Buffer.alloc(m.bytes, 0x70));
      else msg["BusiPayload"] = Buffer.alloc(m.bytes, 0x70);
      return;
    case "reuseGid":
      if (held.length > 0) msg["Gid"] = held[m.index % held.length] ?? "";
      return;
  }
}

type ByteMutation = { kind: "truncate"; at: number } | { kind: "flip"; at: number; byte: number } | { kind: "insert"; at: number; bytes: number[] };
const fraction = fc.double({ min: 0, max: 1, noNaN: true });
const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fraction }),
  fc.record({ kind: fc.constant("flip" as const), at: fraction, byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fraction, bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }) }),
);

function applyByteMutation(bytes: Buffer, m: ByteMutation): Buffer {
  const at = Math.min(bytes.length, Math.floor(m.at * (bytes.length + 1)));
  if (m.kind === "truncate") return bytes.subarray(0, at);
  if (m.kind === "insert") return Buffer.concat([bytes.subarray(0, at), Buffer.from(m.bytes), bytes.subarray(at)]);
  const copy = Buffer.from(bytes);
  if (copy.length > 0) copy[Math.min(at, copy.length - 1)] = m.byte;
  return copy;
}

type Target = { kind: "trans"; valid: ValidCase } | { kind: "topic"; method: string; topic: string; url: string; remark: string } | { kind: "newGid" };

interface GrpcCase {
  target: Target;
  mutations: FieldMutation[];
  bytes: ByteMutation | undefined;
}

const topicArb: fc.Arbitrary<Target> = fc.record({
  kind: fc.constant("topic" as const),
  method: fc.constantFrom("Subscribe", "Unsubscribe", "DeleteTopic"),
  topic: fc.oneof(fc.constantFrom("t1", "t2", "nobody"), weirdStringArb),
  url: fc.oneof(fc.constantFrom("http://127.0.0.1:1/sub", "", "ftp://x"), weirdStringArb),
  remark: fc.oneof(fc.constant(""), weirdStringArb),
});

const caseArb = (): fc.Arbitrary<GrpcCase> =>
  fc.record({
    target: fc.oneof(
      { arbitrary: validCaseArb({ maxBranches: MAX_BRANCHES, maxPayloadBytes: MAX_PAYLOAD_BYTES, deadPort }).filter((v) => v.op in GRPC_OP).map((valid) => ({ kind: "trans" as const, valid })), weight: 12 },
      { arbitrary: topicArb, weight: 2 },
      { arbitrary: fc.constant({ kind: "newGid" as const }), weight: 1 },
    ),
    mutations: fc.oneof({ arbitrary: fc.constant<FieldMutation[]>([]), weight: 1 }, { arbitrary: fc.array(fieldMutationArb, { minLength: 1, maxLength: 3 }), weight: 3 }),
    bytes: fc.oneof({ arbitrary: fc.constant(undefined), weight: 6 }, { arbitrary: byteMutationArb, weight: 1 }),
  });

let counter = 0;

async function runCase(batch: number, c: GrpcCase): Promise<void> {
  counter += 1;
  const held = ledger.list;
  let method: string;
  let message: ProtoObject;
  let op = "";
  if (c.target.kind === "trans") {
    const fresh = `fzg-${FUZZ_SEED}-${batch}-${counter}`;
    const gid = c.target.valid.reuse && held.length > 0 ? held[counter % held.length] ?? fresh : fresh;
    op = c.target.valid.op;
    method = GRPC_OP[op] ?? "Submit";
    message = toProto(op, gid, c.target.valid.body);
  } else if (c.target.kind === "topic") {
    method = c.target.method;
    message = { Topic: c.target.topic, URL: c.target.url, Remark: c.target.remark };
  } else {
    method = "NewGid";
    message = {};
  }
  for (const m of c.mutations) applyFieldMutation(message, m, held);
  const definition = methods[method];
  if (!definition) throw new Error(`no method ${method}`);
  let bytes = definition.requestSerialize(message);
  if (c.bytes) bytes = applyByteMutation(bytes, c.bytes);
  let seenGid: unknown;
  try {
    seenGid = (definition.requestDeserialize(bytes) as { Gid?: unknown }).Gid;
  } catch {
    seenGid = undefined;
  }

  const r = await client.raw(definition.path, bytes);
  stats.requests += 1;
  const what = `${method} ${JSON.stringify(message, (_k, v: unknown) => (typeof v === "string" && v.length > 100 ? `${v.slice(0, 100)}…` : v)).slice(0, 300)}`;
  if (r.ok) {
    stats.count(`OK ${method}`);
    ledger.afterRequest(seenGid, CREATING_OPS.has(op), what);
    return;
  }
  expect([status.INTERNAL, status.UNKNOWN], `${what}: ${status[r.code]} ${r.details}`).not.toContain(r.code);
  const code = r.dtxCode ?? "";
  const spec = DOCUMENTED_CODES[code];
  expect(spec, `${what}: ${status[r.code]} without a documented dtx-code (${code}): ${r.details}`).toBeDefined();
  expect(r.code, `${what}: ${code} with status ${status[r.code]}`).toBe(spec?.grpcCode);
  expect(r.details.length, what).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
  stats.count(code);
  ledger.afterRequest(seenGid, CREATING_OPS.has(op) && (code === "FAILURE" || code === "ONGOING"), what);
}

describe(`fuzzing every dtmgimp.Dtm method (seed ${FUZZ_SEED}, ${BATCHES} x ${RUNS_PER_BATCH} runs)`, () => {
  for (let batch = 0; batch < BATCHES; batch++) {
    it(`batch ${batch}: never INTERNAL/UNKNOWN, documented codes, nothing written on refusal, everything accepted reads back`, { timeout: 300_000 }, async () => {
      await fc.assert(fc.asyncProperty(caseArb(), (c) => runCase(batch, c)), { seed: FUZZ_SEED + 2000 + batch, numRuns: RUNS_PER_BATCH });
      stats.requests += await ledger.verify([1000, 5, 100][batch % 3] ?? 100);
    });
  }

  it("sent the requests it promised and reached every kind of answer", () => {
    process.stdout.write(`[fuzz] ${FILE}: ${stats.summary()}\n`);
    expect(stats.requests).toBeGreaterThanOrEqual(BATCHES * RUNS_PER_BATCH);
    const aimed = ["OK Submit", "OK Prepare", "OK NewGid", "OK PrepareWorkflow", "FAILURE", "INVALID_REQUEST", "INVALID_GID", "INVALID_TRANS_TYPE", "INVALID_OPTIONS", "INVALID_PAYLOADS"];
    expect(aimed.filter((k) => !stats.outcomes.has(k)), stats.summary()).toEqual([]);
  });
});
