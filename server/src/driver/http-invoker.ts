import type { Dispatcher } from "undici";
import { request } from "undici";
import type { Outcome } from "../core/types.ts";
import type { BranchCall } from "./invoker.ts";
import { UndiciBranchInvoker } from "./undici-invoker.ts";
import { signWith } from "./branch-signer.ts";
import { classifyHttpResult } from "./outcome.ts";

/** The most of a participant's answer we read; the rest is discarded (a hostile RM cannot bloat us). */
const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * Calls participants over HTTP as dtm does (docs/protocol.md#http-branch-calls): POST with the raw payload (GET when
 * there is none, except for XA), `gid`, `trans_type`, `branch_id`, `op` merged into the query,
 * `Content-Type: application/json` plus the trans's `branch_headers`. Connections are kept alive
 * and pooled per origin by one undici Agent, with at most `limits.connections` per origin and
 * `limits.queue` calls waiting for one (docs/overload.md). With a signer, each request carries
 * `x-dtx-signature` over its method, path and query, and body (a branch header of that name is
 * replaced).
 */
export class HttpInvoker extends UndiciBranchInvoker {
  override invoke(call: BranchCall): Promise<Outcome> {
    return this.client.run(call.url, (url) => `invalid url: ${url}`, (target) => this.send(call, target));
  }

  private async send(call: BranchCall, target: URL): Promise<Outcome> {
    // One URLSearchParams, assigned once: each `target.searchParams.set` re-serializes the URL.
    const query = new URLSearchParams(target.search);
    query.set("gid", call.gid);
    query.set("trans_type", call.transType);
    query.set("branch_id", call.branchId);
    query.set("op", call.op);
    target.search = query.toString();
    const hasBody = call.body.byteLength > 0;
    const method = hasBody || call.transType === "xa" ? "POST" : "GET";
    const body = hasBody ? Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength) : undefined;
    const headers: Record<string, string> = { "content-type": "application/json", ...call.headers };
    const { signer } = this.options;
    if (signer) signWith(signer, headers, method, target, body ?? "");
    // One timer per call, cleared when the call ends (AbortSignal.timeout would fire later anyway
    // and build an exception for every call); the undici timeouts alone do not bound connecting.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new Error(`no answer within ${call.timeoutMs} ms`)), call.timeoutMs);
    const { signal } = call;
    const cutOff = (): void => abort.abort(signal?.reason);
    if (signal?.aborted) cutOff();
    else signal?.addEventListener("abort", cutOff, { once: true });
    try {
      const res = await request(target, {
        method,
        dispatcher: this.client.agent,
        headers,
        body,
        headersTimeout: call.timeoutMs,
        bodyTimeout: call.timeoutMs,
        signal: abort.signal,
      });
      const text = await readCapped(res);
      return classifyHttpResult(res.statusCode, text, this.rules);
    } catch (error) {
      return { kind: "error", message: `${method} ${call.url}: ${describe(error)}` };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", cutOff);
    }
  }

}

/** The answer's text, at most MAX_RESPONSE_BYTES of it. */
async function readCapped(res: Dispatcher.ResponseData): Promise<string> {
  // A declared length within the cap is read in one go (undici refuses a body longer than it
  // declared); otherwise chunk by chunk, keeping only the first MAX_RESPONSE_BYTES.
  const declared = Number(res.headers["content-length"]);
  if (Number.isInteger(declared) && declared >= 0 && declared <= MAX_RESPONSE_BYTES) return res.body.text();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as AsyncIterable<Buffer | Uint8Array>) {
    if (size < MAX_RESPONSE_BYTES) {
      const buf = Buffer.from(chunk);
      chunks.push(buf.subarray(0, MAX_RESPONSE_BYTES - size));
      size += buf.length;
    }
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** The error's name, message and code: a TLS refusal says which check failed (e.g. `UNABLE_TO_VERIFY_LEAF_SIGNATURE`). */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const text = error.name === "Error" ? error.message : `${error.name}: ${error.message}`;
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && !text.includes(code) ? `${text} (${code})` : text;
}
