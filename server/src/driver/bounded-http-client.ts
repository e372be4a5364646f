import { Agent } from "undici";
import type { Outcome } from "../core/types.ts";
import type { BranchTls } from "./branch-tls.ts";
import { undiciTlsOptions } from "./branch-tls.ts";
import type { BranchClientLimits } from "./origin-limiter.ts";
import { DEFAULT_BRANCH_CLIENT_LIMITS, OriginLimiter } from "./origin-limiter.ts";
import type { ConnectResolver } from "./pinned-lookup.ts";
import { pinnedLookup } from "./pinned-lookup.ts";

/** How a branch client connects: TLS material, and the policy's resolver when the URL policy is on. */
export interface BranchConnectOptions {
  /** CA, client certificate and verification for `https://` participants (docs/security.md#tls-for-branch-calls). */
  tls?: BranchTls;
  /** Connect to the addresses that passed the URL policy, never resolve on our own (docs/security.md#pinned-addresses). */
  resolve?: ConnectResolver;
}

/**
 * What every HTTP-based branch client (plain HTTP, JSON-RPC) shares: one undici Agent with at most
 * `limits.connections` kept-alive connections per origin, and an {@link OriginLimiter} that
 * refuses a call past `connections + queue` in flight to one origin (docs/overload.md). undici's
 * global dispatcher has no connection limit, so each client owns one of these.
 */
export class BoundedHttpClient {
  readonly agent: Agent;
  private readonly limiter: OriginLimiter;

  constructor(limits: BranchClientLimits = DEFAULT_BRANCH_CLIENT_LIMITS, connect: BranchConnectOptions = {}) {
    // pipelining 1: a slow answer must not hold up the calls queued behind it on one socket.
    this.agent = new Agent({
      keepAliveTimeout: 30_000, connections: limits.connections, pipelining: 1,
      connect: { ...undiciTlsOptions(connect.tls), ...(connect.resolve ? { lookup: pinnedLookup(connect.resolve) } : {}) },
    });
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
