import type { Outcome } from "../core/types.ts";
import { newGid } from "../core/gid.ts";
import type { BranchCall } from "./invoker.ts";
import { UndiciBranchInvoker, describeCallError } from "./undici-invoker.ts";
import { classifyAnswer, dtmResultField, parseObject, quotedBody } from "./outcome.ts";
import { signWith } from "./branch-signer.ts";

export const JSONRPC_FAILURE = -32901;
export const JSONRPC_ONGOING = -32902;

/**
 * Calls a participant with JSON-RPC 2.0 (docs/protocol.md#json-rpc-branch-calls): POST to the URL with
 * `{"id","jsonrpc":"2.0","method":<the URL's ?method=>,"params":<payload object + gid, trans_type,
 * branch_id, op>}`. The HTTP status decides first (409, 425), then a `dtm_result` (top level or
 * in `result`), then an `error` member: -32901 FAILURE, -32902 ONGOING; then, unless strict,
 * the word FAILURE / ONGOING anywhere; another error code is an error. (dtm's own numeric check
 * never matches; ours does.)
 */
export class JsonRpcInvoker extends UndiciBranchInvoker {
  override invoke(call: BranchCall): Promise<Outcome> {
    return this.client.run(call.url, (url) => `cannot build a JSON-RPC call to ${url}: invalid url`, (target) => this.send(call, target));
  }

  private async send(call: BranchCall, target: URL): Promise<Outcome> {
    let method: string;
    let params: Record<string, unknown>;
    try {
      method = target.searchParams.get("method") ?? "";
      const text = Buffer.from(call.body).toString("utf8");
      const payload: unknown = text === "" ? {} : JSON.parse(text);
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) throw new Error("the payload must be a JSON object");
      params = { ...(payload as Record<string, unknown>), gid: call.gid, trans_type: call.transType, branch_id: call.branchId, op: call.op };
    } catch (error) {
      return { kind: "error", message: `cannot build a JSON-RPC call to ${call.url}: ${(error as Error).message}` };
    }
    const body = JSON.stringify({ id: newGid(), jsonrpc: "2.0", method, params });
    const headers: Record<string, string> = { "content-type": "application/json", ...call.headers };
    const path = `${target.pathname}${target.search}`;
    if (this.options.signer) signWith(this.options.signer, headers, "POST", path, body);
    try {
      const { statusCode, text } = await this.client.send({ origin: target.origin, path, method: "POST", headers, body, timeoutMs: call.timeoutMs, signal: call.signal });
      const answer = parseObject(text);
      // dtm_result may sit at the top or inside `result`; either decides before the error member.
      const dtmResult = dtmResultField(answer) ?? dtmResultField(answer?.["result"]);
      return classifyAnswer(statusCode, text, this.rules, dtmResult, classifyRpcError(text, answer, this.rules.echoBodies));
    } catch (error) {
      return describeCallError("POST", call.url, error);
    }
  }

}

function classifyRpcError(text: string, body: Record<string, unknown> | undefined, echoBodies: boolean): Outcome {
  if (body === undefined) {
    const quoted = quotedBody(text, echoBodies).slice(0, 200);
    return { kind: "error", message: `JSON-RPC answer is not a JSON object${quoted === "" ? "" : `: ${quoted}`}` };
  }
  const error = body["error"];
  if (error === undefined || error === null) return { kind: "success" };
  const e = typeof error === "object" ? (error as Record<string, unknown>) : {};
  const message = typeof e["message"] === "string" ? e["message"] : JSON.stringify(error);
  if (e["code"] === JSONRPC_FAILURE) return { kind: "failure", message };
  if (e["code"] === JSONRPC_ONGOING) return { kind: "ongoing" };
  return { kind: "error", message: `JSON-RPC error ${String(e["code"])}: ${message}` };
}
