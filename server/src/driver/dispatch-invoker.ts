import type { Outcome } from "../core/types.ts";
import type { BranchCall, BranchInvoker } from "./invoker.ts";
import { transportOf } from "./invoker.ts";

export interface Transports {
  http: BranchInvoker;
  "json-rpc": BranchInvoker;
  /** Absent until a gRPC invoker is configured. */
  grpc?: BranchInvoker;
}

/** Routes each call to the transport its trans protocol and URL select (PROTOCOL §6). */
export class DispatchInvoker implements BranchInvoker {
  constructor(private readonly transports: Transports) {}

  invoke(call: BranchCall): Promise<Outcome> {
    const transport = this.transports[transportOf(call.protocol, call.url)];
    if (!transport) return Promise.resolve({ kind: "error", message: `no gRPC transport is configured for ${call.url}` });
    return transport.invoke(call);
  }

  async close(): Promise<void> {
    await Promise.all(Object.values(this.transports).map((t: BranchInvoker) => t.close()));
  }
}
