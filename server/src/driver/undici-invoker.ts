import type { Outcome } from "../core/types.ts";
import type { BranchCall, BranchCallOptions, BranchInvoker } from "./invoker.ts";
import type { AnswerRules } from "./outcome.ts";
import type { BranchClientLimits } from "./origin-limiter.ts";
import { DEFAULT_BRANCH_CLIENT_LIMITS } from "./origin-limiter.ts";
import type { BranchConnectOptions } from "./bounded-http-client.ts";
import { BoundedHttpClient, CallNotMade } from "./bounded-http-client.ts";

/**
 * What the HTTP and the JSON-RPC invokers share: their own bounded undici client (undici's global
 * agent has no connection limit; docs/overload.md), TLS and pinned-address connect options, and
 * the rules that read a branch's answer (strict results, whether bodies are echoed).
 */
export abstract class UndiciBranchInvoker implements BranchInvoker {
  protected readonly client: BoundedHttpClient;
  protected readonly rules: AnswerRules;

  constructor(
    strictResults: boolean, limits: BranchClientLimits = DEFAULT_BRANCH_CLIENT_LIMITS, protected readonly options: BranchCallOptions = {}, connect: BranchConnectOptions = {},
  ) {
    this.client = new BoundedHttpClient(limits, connect);
    this.rules = { strict: strictResults, echoBodies: options.echoBodies ?? false };
  }

  abstract invoke(call: BranchCall): Promise<Outcome>;

  close(): Promise<void> {
    return this.client.close();
  }
}

/**
 * The `error` outcome of a call that got no answer: a refused call says only why it was not made;
 * any other fault names the request and the error's name, message and code (a TLS refusal says
 * which check failed, e.g. `UNABLE_TO_VERIFY_LEAF_SIGNATURE`).
 */
export function describeCallError(method: string, url: string, error: unknown): Outcome {
  if (error instanceof CallNotMade) return { kind: "error", message: error.message };
  if (!(error instanceof Error)) return { kind: "error", message: `${method} ${url}: ${String(error)}` };
  const text = error.name === "Error" ? error.message : `${error.name}: ${error.message}`;
  const code = (error as { code?: unknown }).code;
  return { kind: "error", message: `${method} ${url}: ${typeof code === "string" && !text.includes(code) ? `${text} (${code})` : text}` };
}
