import type { Outcome } from "../core/types.ts";
import type { BranchCall } from "./invoker.ts";
import { UndiciBranchInvoker, describeCallError } from "./undici-invoker.ts";
import { signWith } from "./branch-signer.ts";
import { classifyHttpResult } from "./outcome.ts";

/**
 * Calls participants over HTTP as dtm does (docs/protocol.md#http-branch-calls): POST with the raw payload (GET when
 * there is none, except for XA), `gid`, `trans_type`, `branch_id`, `op` merged into the query,
 * `Content-Type: application/json` plus the trans's `branch_headers`. Connections are kept alive
 * and pooled per origin by one undici Agent, with at most `limits.connections` per origin and
 * `limits.queue` calls waiting for one (docs/overload.md); at most 64 KB of an answer is read. With
 * a signer, each request carries `x-dtx-signature` over its method, path and query, and body (a
 * branch header of that name is replaced).
 */
export class HttpInvoker extends UndiciBranchInvoker {
  override invoke(call: BranchCall): Promise<Outcome> {
    return this.client.run(call.url, (url) => `invalid url: ${url}`, (target) => this.send(call, target));
  }

  private async send(call: BranchCall, target: URL): Promise<Outcome> {
    const query = new URLSearchParams(target.search);
    query.set("gid", call.gid);
    query.set("trans_type", call.transType);
    query.set("branch_id", call.branchId);
    query.set("op", call.op);
    const path = `${target.pathname}?${query.toString()}`;
    const hasBody = call.body.byteLength > 0;
    const method = hasBody || call.transType === "xa" ? "POST" : "GET";
    const body = hasBody ? Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength) : undefined;
    const headers: Record<string, string> = { "content-type": "application/json", ...call.headers };
    const { signer } = this.options;
    if (signer) signWith(signer, headers, method, path, body ?? "");
    try {
      const answer = await this.client.send({ origin: target.origin, path, method, headers, body, timeoutMs: call.timeoutMs, signal: call.signal });
      return classifyHttpResult(answer.statusCode, answer.text, this.rules);
    } catch (error) {
      return describeCallError(method, call.url, error);
    }
  }
}
