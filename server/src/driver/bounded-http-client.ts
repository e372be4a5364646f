import { Agent } from "undici";
import type { Outcome } from "../core/types.ts";
import type { BranchClientLimits } from "./origin-limiter.ts";
import { DEFAULT_BRANCH_CLIENT_LIMITS, OriginLimiter } from "./origin-limiter.ts";

/**
 * What every HTTP-based branch client (plain HTTP, JSON-RPC) shares: one undici Agent with at most
 * `limits.connections` kept-alive connections per origin, and an {@link OriginLimiter} that
 * refuses a call past `connections + queue` in flight to one origin (docs/overload.md). undici's
 * global dispatcher has no connection limit, so each client owns one of these.
 */
export class BoundedHttpClient {
  readonly agent: Agent;
  private readonly limiter: OriginLimiter;

  constructor(limits: BranchClientLimits = DEFAULT_BRANCH_CLIENT_LIMITS) {
    // pipelining 1: a slow answer must not hold up the calls queued behind it on one socket.
    this.agent = new Agent({ keepAliveTimeout: 30_000, connections: limits.connections, pipelining: 1 });
    this.limiter = new OriginLimiter(limits);
  }

  /**
   * Parses `url` and runs `send` within its origin's bound. A URL that does not parse is an
   * `error` outcome whose message `invalid` words; nothing is sent.
   */
  run(url: string, invalid: (url: string) => string, send: (target: URL) => Promise<Outcome>): Promise<Outcome> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.resolve({ kind: "error", message: invalid(url) });
    }
    return this.limiter.run(target.origin, () => send(target));
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
