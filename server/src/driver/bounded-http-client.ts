import { Agent } from "undici";
import type { Outcome } from "../core/types.ts";
import type { BranchTls } from "./branch-tls.ts";
import type { HttpAnswer, HttpExchangeRequest } from "./http-exchange.ts";
import { exchange } from "./http-exchange.ts";
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
  private readonly agent: Agent;
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
   * Parses `url` and runs `send` with it. A URL that does not parse is an `error` outcome whose
   * message `invalid` words; nothing is sent.
   */
  run(url: string, invalid: (url: string) => string, send: (target: URL) => Promise<Outcome>): Promise<Outcome> {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return Promise.resolve({ kind: "error", message: invalid(url) });
    }
    return send(target);
  }

  /**
   * Sends one request through the agent, within the origin's bound: a call
   * past it is refused with a {@link CallNotMade} and nothing is sent. The slot is held until
   * undici lets go of the request, which for a call cut off while queued is after it rejected.
   */
  send(request: HttpExchangeRequest): Promise<HttpAnswer> {
    const { origin } = request;
    const refused = this.limiter.enter(origin);
    if (refused !== undefined) return Promise.reject(new CallNotMade(refused));
    return exchange(this.agent, request, () => this.limiter.leave(origin));
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

/** A call the client refused to make (its origin's bound is reached); the message says why. */
export class CallNotMade extends Error {}
