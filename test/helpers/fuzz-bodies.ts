import fc from "fast-check";
import type { Json, JsonObject } from "./fuzz.ts";
import { realUrl, urlArb } from "./fuzz.ts";

/**
 * Valid request bodies for every transaction operation, the starting points the fuzz suites
 * mutate. Each names the operation and whether its gid should be a fresh one or one the
 * coordinator already holds (abort, registerBranch, forceStop and a tcc/xa submit mean little
 * on a gid nobody prepared).
 */

export const BODY_OPS = ["submit", "prepare", "abort", "registerBranch", "prepareWorkflow", "forceStop", "resetNextCronTime"] as const;
export type BodyOp = (typeof BODY_OPS)[number];
/** Operations that may create a transaction row. */
export const CREATING_OPS: ReadonlySet<string> = new Set(["submit", "prepare", "prepareWorkflow"]);

export interface ValidCase {
  op: BodyOp;
  /** Use a gid the coordinator holds (when there is one) instead of a fresh one. */
  reuse: boolean;
  /** The body without its gid. */
  body: JsonObject;
}

export interface BodyLimits {
  maxBranches: number;
  maxPayloadBytes: number;
  deadPort: number;
}

const payloadArb = (limits: BodyLimits): fc.Arbitrary<string> =>
  fc.oneof(
    { arbitrary: fc.constant(""), weight: 3 },
    { arbitrary: fc.json({ maxDepth: 2 }), weight: 3 },
    { arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }), weight: 2 },
    { arbitrary: fc.constantFrom(limits.maxPayloadBytes, limits.maxPayloadBytes + 1).map((n) => "p".repeat(n)), weight: 1 },
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

const optionsArb: fc.Arbitrary<JsonObject> = fc.record(
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
) as fc.Arbitrary<JsonObject>;

function sagaArb(limits: BodyLimits): fc.Arbitrary<JsonObject> {
  const maxSteps = Math.floor(limits.maxBranches / 2) + 1;
  return fc.integer({ min: 0, max: maxSteps }).chain((n) =>
    fc
      .record({
        steps: fc.array(fc.record({ action: urlArb, compensate: urlArb }), { minLength: n, maxLength: n }),
        payloads: fc.array(payloadArb(limits), { minLength: n, maxLength: n }),
        options: optionsArb,
        customData: n > 1 ? fc.option(ordersArb(n), { nil: undefined }) : fc.constant(undefined),
      })
      .map(({ steps, payloads, options, customData }) => {
        const body: JsonObject = {
          trans_type: "saga",
          steps: steps.map((s) => ({ action: realUrl(s.action, limits.deadPort), compensate: realUrl(s.compensate, limits.deadPort) })),
          payloads,
          wait_result: false,
          ...options,
        };
        if (customData !== undefined) body["custom_data"] = customData;
        return body;
      }),
  );
}

function msgArb(limits: BodyLimits): fc.Arbitrary<JsonObject> {
  return fc.integer({ min: 0, max: 3 }).chain((n) =>
    fc
      .record({
        actions: fc.array(fc.oneof(urlArb, fc.constantFrom("topic://t1", "topic://nobody")), { minLength: n, maxLength: n }),
        payloads: fc.array(payloadArb(limits), { minLength: n, maxLength: n }),
        delay: fc.option(fc.constantFrom(0, 1, 5, 3600), { nil: undefined }),
        options: optionsArb,
      })
      .map(({ actions, payloads, delay, options }) => ({
        trans_type: "msg",
        steps: actions.map((a) => ({ action: a.startsWith("topic://") ? a : realUrl(a, limits.deadPort) })),
        payloads,
        query_prepared: realUrl("dead:/query", limits.deadPort),
        ...(delay !== undefined ? { custom_data: JSON.stringify({ delay }) } : {}),
        ...options,
      })),
  );
}

const branchIdArb = fc.constantFrom("01", "02", "b1", "x.y:z-1");

function registerArb(limits: BodyLimits): fc.Arbitrary<JsonObject> {
  return fc.oneof(
    fc.record({ trans_type: fc.constant("tcc"), branch_id: branchIdArb, confirm: urlArb, cancel: urlArb, data: fc.string({ maxLength: 20 }) })
      .map((b) => ({ ...b, confirm: realUrl(b.confirm, limits.deadPort), cancel: realUrl(b.cancel, limits.deadPort) })),
    fc.record({ trans_type: fc.constant("xa"), branch_id: branchIdArb, url: urlArb, data: fc.string({ maxLength: 20 }) })
      .map((b) => ({ ...b, url: realUrl(b.url || "dead:/xa", limits.deadPort) })),
    fc.record({ trans_type: fc.constant("workflow"), branch_id: branchIdArb, op: fc.constantFrom("action", "compensate", "01"), status: fc.constantFrom("succeed", "failed", "prepared"), data: fc.string({ maxLength: 20 }) }),
  ) as fc.Arbitrary<JsonObject>;
}

/** A valid body for one of the body operations, with whether to reuse a held gid. */
export function validCaseArb(limits: BodyLimits): fc.Arbitrary<ValidCase> {
  const tccXa = fc.constantFrom("tcc", "xa");
  const reuse = (p: number): fc.Arbitrary<boolean> => fc.integer({ min: 1, max: 100 }).map((x) => x <= p);
  const c = (op: BodyOp, r: fc.Arbitrary<boolean>, body: fc.Arbitrary<JsonObject>, weight: number): fc.WeightedArbitrary<ValidCase> => ({
    arbitrary: fc.record({ op: fc.constant(op), reuse: r, body }),
    weight,
  });
  return fc.oneof(
    c("submit", reuse(10), sagaArb(limits), 8),
    c("submit", reuse(20), msgArb(limits), 3),
    c("submit", reuse(80), tccXa.map((t) => ({ trans_type: t })), 2),
    c("submit", reuse(80), fc.constantFrom("succeed", "failed").map((s) => ({ trans_type: "workflow", req_extra: { status: s } })), 1),
    c("prepare", reuse(10), msgArb(limits), 2),
    c("prepare", reuse(10), tccXa.map((t) => ({ trans_type: t })), 3),
    c("prepare", reuse(10), sagaArb(limits), 1),
    c("abort", reuse(85), fc.record({ trans_type: fc.constantFrom("tcc", "xa", "msg", "saga"), rollback_reason: fc.string({ maxLength: 20 }) }) as fc.Arbitrary<JsonObject>, 2),
    c("registerBranch", reuse(85), registerArb(limits), 3),
    c("prepareWorkflow", reuse(20), fc.record({ trans_type: fc.constant("workflow"), req_extra: fc.constant({}) as fc.Arbitrary<Json> }) as fc.Arbitrary<JsonObject>, 2),
    c("forceStop", reuse(85), fc.constant({}), 1),
    c("resetNextCronTime", reuse(85), fc.constant({}), 1),
  );
}

/** The field paths of a body worth mutating (top-level keys and the first step's fields). */
export function pathsOf(body: JsonObject): (string | number)[][] {
  const paths: (string | number)[][] = Object.keys(body).map((k) => [k]);
  const steps = body["steps"];
  if (Array.isArray(steps) && steps.length > 0) {
    paths.push(["steps", 0]);
    const first = steps[0];
    if (first && typeof first === "object" && !Array.isArray(first)) for (const k of Object.keys(first)) paths.push(["steps", 0, k]);
  }
  if (Array.isArray(body["payloads"]) && body["payloads"].length > 0) paths.push(["payloads", 0]);
  for (const k of ["branch_headers", "req_extra"]) {
    const v = body[k];
    if (v && typeof v === "object" && !Array.isArray(v)) for (const h of Object.keys(v)) paths.push([k, h]);
  }
  return paths;
}

/** Fields every body op may carry, mutated even when the valid body lacks them. */
export const COMMON_PATHS: (string | number)[][] = [
  ["trans_type"], ["steps"], ["payloads"], ["custom_data"], ["wait_result"], ["timeout_to_fail"], ["retry_interval"],
  ["request_timeout"], ["retry_limit"], ["retry_count"], ["concurrent"], ["branch_headers"], ["protocol"], ["query_prepared"],
  ["rollback_reason"], ["req_extra"], ["branch_id"], ["op"], ["status"], ["url"], ["confirm"], ["cancel"], ["data"],
];
