import type { Outcome } from "../core/types.ts";

/**
 * Classifies a participant's HTTP answer (PROTOCOL §6.1 and D9): the status code first (425
 * ONGOING, 409 FAILURE), then a `dtm_result` field in a JSON body, then, unless strict mode is on,
 * dtm's legacy rule that any body containing the word ONGOING or FAILURE decides.
 */
export function classifyHttpResult(status: number, body: string, strict: boolean): Outcome {
  if (status === 425) return { kind: "ongoing" };
  if (status === 409) return { kind: "failure", message: failureText(body) };
  const field = dtmResultField(body);
  if (field === "ONGOING") return { kind: "ongoing" };
  if (field === "FAILURE") return { kind: "failure", message: failureText(body) };
  if (!strict) {
    if (body.includes("ONGOING")) return { kind: "ongoing" };
    if (body.includes("FAILURE")) return { kind: "failure", message: failureText(body) };
  }
  if (status !== 200) return { kind: "error", message: `http status ${status}: ${truncate(body)}` };
  return { kind: "success" };
}

function dtmResultField(body: string): string | undefined {
  if (!body.startsWith("{") || !body.includes("dtm_result")) return undefined;
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed !== null && typeof parsed === "object") {
      const value = (parsed as Record<string, unknown>)["dtm_result"];
      return typeof value === "string" ? value : undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function failureText(body: string): string {
  return truncate(body) || "FAILURE";
}

function truncate(text: string, max = 512): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
