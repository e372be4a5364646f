import type { Outcome } from "../core/types.ts";
import type { UrlPolicy } from "../driver/url-policy.ts";
import type { BranchCall, BranchInvoker } from "./invoker.ts";
import { transportOf } from "./invoker.ts";

export interface Transports {
  http: BranchInvoker;
  "json-rpc": BranchInvoker;
  /** Absent until a gRPC invoker is configured. */
  grpc?: BranchInvoker;
}

/**
 * Routes each call to the transport its trans protocol and URL select (docs/protocol.md#branch-calls). With a URL
 * policy, every call is checked first (a stored row may predate a policy change): a refused call
 * is never made and becomes an `error` outcome, retried and alerted like any failing branch.
 */
export class DispatchInvoker implements BranchInvoker {
  constructor(private readonly transports: Transports, private readonly policy?: UrlPolicy) {}

  invoke(call: BranchCall): Promise<Outcome> {
    // Without a policy the call goes straight out: no extra await on every branch call.
    if (this.policy?.active) return this.checkedInvoke(this.policy, call);
    return this.dispatch(call);
  }

  private async checkedInvoke(policy: UrlPolicy, call: BranchCall): Promise<Outcome> {
    const reason = await policy.callRefusal(call.url);
    if (reason !== undefined) return { kind: "error", message: `URL_NOT_ALLOWED: call not made: ${reason}` };
    return this.dispatch(call);
  }

  private dispatch(call: BranchCall): Promise<Outcome> {
    const transport = this.transports[transportOf(call.protocol, call.url)];
    if (!transport) return Promise.resolve({ kind: "error", message: `no gRPC transport is configured for ${call.url}` });
    return transport.invoke(call);
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.transports).map((t: BranchInvoker) => t.close()));
  }
}
