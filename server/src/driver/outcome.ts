import type { Outcome } from "../core/types.ts";

/**
 * Classifies a participant's HTTP answer (docs/protocol.md#http-branch-calls and docs/deviations.md D9): the status code first (425
 * ONGOING, 409 FAILURE), then a `dtm_result` field in a JSON body, which decides when present
 * (SUCCESS included: a SUCCESS body that mentions ONGOING elsewhere is still a success), then,
 * unless strict mode is on, dtm's legacy rule that any body containing the word ONGOING or
 * FAILURE decides.
 */
export function classifyHttpResult(status: number, body: string, strict: boolean): Outcome {
  // Most answers carry no dtm_result; only those are worth a JSON parse.
  return classifyAnswer(status, body, strict, body.includes("dtm_result") ? dtmResultField(parseObject(body)) : undefined);
}

/**
 * The shared rule behind {@link classifyHttpResult}, with the `dtm_result` already read (a
 * JSON-RPC answer may carry it inside `result`). `rpcOutcome` is what a JSON-RPC `error` member
 * said; it ranks after `dtm_result` and before the substring rule.
 */
export function classifyAnswer(status: number, body: string, strict: boolean, dtmResult: string | undefined, rpcOutcome?: Outcome): Outcome {
  if (status === 425) return { kind: "ongoing" };
  if (status === 409) return { kind: "failure", message: failureText(body) };
  if (dtmResult === "ONGOING") return { kind: "ongoing" };
  if (dtmResult === "FAILURE") return { kind: "failure", message: failureText(body) };
  if (dtmResult === "SUCCESS") return status === 200 ? { kind: "success" } : httpError(status, body);
  if (rpcOutcome && rpcOutcome.kind !== "success" && rpcOutcome.kind !== "error") return rpcOutcome;
  if (!strict) {
    if (body.includes("ONGOING")) return { kind: "ongoing" };
    if (body.includes("FAILURE")) return { kind: "failure", message: failureText(body) };
  }
  if (status !== 200) return httpError(status, body);
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

function httpError(status: number, body: string): Outcome {
  return { kind: "error", message: `http status ${status}: ${truncate(body)}` };
}

function failureText(body: string): string {
  return truncate(body) || "FAILURE";
}

function truncate(text: string, max = 512): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
