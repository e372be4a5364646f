import type { Outcome } from "../core/types.ts";

/**
 * How answers are read: `strict` turns off dtm's legacy word rule (docs/deviations.md D9);
 * `echoBodies` keeps up to 512 characters of a branch's raw body in the outcome's message, which
 * reaches API clients (a 409 / 425 answer, `rollback_reason`). Off by default: only the branch's
 * own `message` (or `error`) field of a JSON answer is kept (docs/security.md#what-clients-see-of-branch-answers).
 */
export interface AnswerRules {
  readonly strict: boolean;
  readonly echoBodies: boolean;
}

/**
 * Classifies a participant's HTTP answer (docs/protocol.md#http-branch-calls and docs/deviations.md D9): the status code first (425
 * ONGOING, 409 FAILURE, 401 an error), then a `dtm_result` field in a JSON body, which decides when present
 * (SUCCESS included: a SUCCESS body that mentions ONGOING elsewhere is still a success), then,
 * unless strict mode is on, dtm's legacy rule that any body containing the word ONGOING or
 * FAILURE decides. `rules` as a boolean is `strict` with bodies not echoed.
 */
export function classifyHttpResult(status: number, body: string, rules: AnswerRules | boolean): Outcome {
  // Most answers carry no dtm_result; only those are worth a JSON parse.
  return classifyAnswer(status, body, rules, body.includes("dtm_result") ? dtmResultField(parseObject(body)) : undefined);
}

/**
 * The shared rule behind {@link classifyHttpResult}, with the `dtm_result` already read (a
 * JSON-RPC answer may carry it inside `result`). `rpcOutcome` is what a JSON-RPC `error` member
 * said; it ranks after `dtm_result` and before the substring rule.
 */
export function classifyAnswer(status: number, body: string, rules: AnswerRules | boolean, dtmResult: string | undefined, rpcOutcome?: Outcome): Outcome {
  const { strict, echoBodies } = typeof rules === "boolean" ? { strict: rules, echoBodies: false } : rules;
  const failure = (): Outcome => ({ kind: "failure", message: failureText(status, body, echoBodies) });
  if (status === 425) return { kind: "ongoing" };
  if (status === 409) return failure();
  // A refused credential (a branch signature, a proxy's auth) is never an outcome of the business
  // call, whatever words its body holds: retried, and logged by the executor.
  if (status === 401) return { kind: "error", message: httpErrorText(status, body, echoBodies), unauthenticated: true };
  if (dtmResult === "ONGOING") return { kind: "ongoing" };
  if (dtmResult === "FAILURE") return failure();
  if (dtmResult === "SUCCESS") return status === 200 ? { kind: "success" } : httpError(status, body, echoBodies);
  if (rpcOutcome && rpcOutcome.kind !== "success" && rpcOutcome.kind !== "error") return rpcOutcome;
  if (!strict) {
    if (body.includes("ONGOING")) return { kind: "ongoing" };
    if (body.includes("FAILURE")) return failure();
  }
  if (status !== 200) return httpError(status, body, echoBodies);
  return rpcOutcome ?? { kind: "success" };
}

/** The body as a JSON object, or undefined when it is not one. */
export function parseObject(body: string): Record<string, unknown> | undefined {
  if (!body.trimStart().startsWith("{")) return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A string `dtm_result` of an object, if it has one. */
export function dtmResultField(o: unknown): string | undefined {
  if (o === null || typeof o !== "object" || Array.isArray(o)) return undefined;
  const value = (o as Record<string, unknown>)["dtm_result"];
  return typeof value === "string" ? value : undefined;
}

/**
 * What the branch itself says in dtm's JSON shapes: `{"dtm_result":...,"message":"..."}` (dtm's
 * envelope and dtx's SDK), `{"error":"..."}` (dtm's Go `WrapHandler`), or a JSON-RPC `error.message`.
 */
export function branchMessage(body: string): string | undefined {
  if (!body.includes('"message"') && !body.includes('"error"')) return undefined;
  const o = parseObject(body);
  if (o === undefined) return undefined;
  const error = o["error"];
  const candidates = [o["message"], error, error !== null && typeof error === "object" ? (error as Record<string, unknown>)["message"] : undefined];
  const found = candidates.find((c): c is string => typeof c === "string" && c !== "");
  return found === undefined ? undefined : truncate(found);
}

/** The part of a body an outcome may quote: the branch's message, else the raw body only when echoing. */
export function quotedBody(body: string, echoBodies: boolean): string {
  return branchMessage(body) ?? (echoBodies ? truncate(body) : "");
}

function httpError(status: number, body: string, echoBodies: boolean): Outcome {
  return { kind: "error", message: httpErrorText(status, body, echoBodies) };
}

function httpErrorText(status: number, body: string, echoBodies: boolean): string {
  const quoted = quotedBody(body, echoBodies);
  if (quoted !== "") return `http status ${status}: ${quoted}`;
  return body === "" ? `http status ${status}` : `http status ${status} (body not shown)`;
}

function failureText(status: number, body: string, echoBodies: boolean): string {
  return quotedBody(body, echoBodies) || `HTTP ${status}: the branch answered FAILURE`;
}

function truncate(text: string, max = 512): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
