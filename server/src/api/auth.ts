import { createHash, timingSafeEqual } from "node:crypto";
import type { ErrorSpec } from "../core/errors.ts";

/**
 * Opt-in API authentication (docs/security.md#authentication): bearer tokens, stored as SHA-256 digests and
 * compared in constant time, each with roles. With no token configured (the default) every
 * request is let through, exactly as dtm does, so dtm's own clients keep working.
 *
 * The one table of who may call what is {@link HTTP_ROUTE_ROLES} and {@link GRPC_METHOD_ROLES}.
 */

export const ROLES = ["client", "admin", "metrics"] as const;
export type Role = (typeof ROLES)[number];
/** What a route needs: a role, or nothing (`open`). */
export type Access = Role | "open";

/** `admin` may do everything; `client` and `metrics` only their own. */
const GRANTS: Record<Role, readonly Role[]> = {
  client: ["client"],
  metrics: ["metrics"],
  admin: ["admin", "client", "metrics"],
};

/**
 * Every HTTP route by its pattern (method-independent; HEAD follows GET). A route missing here
 * is refused at startup, so a new route cannot be added without deciding who may call it.
 */
export const HTTP_ROUTE_ROLES: Readonly<Record<string, Access>> = {
  // Liveness, and the admin page's static assets (its API calls need an admin token).
  "/api/ping": "open",
  "/api/dtx/health": "open",
  "/": "open",
  "/admin": "open",
  "/admin/": "open",
  "/admin/app.js": "open",
  "/admin/style.css": "open",
  "/api/metrics": "metrics",
  // The transaction API, as dtm's SDKs and participants use it.
  "/api/dtmsvr/version": "client",
  "/api/dtmsvr/newGid": "client",
  "/api/dtmsvr/submit": "client",
  "/api/dtmsvr/prepare": "client",
  "/api/dtmsvr/abort": "client",
  "/api/dtmsvr/registerBranch": "client",
  "/api/dtmsvr/registerXaBranch": "client",
  "/api/dtmsvr/registerTccBranch": "client",
  "/api/dtmsvr/prepareWorkflow": "client",
  "/api/dtmsvr/query": "client",
  "/api/dtmsvr/subscribe": "client",
  "/api/dtmsvr/unsubscribe": "client",
  "/api/dtmsvr/queryKV": "client",
  "/api/json-rpc": "client",
  // Operator actions and listings across every transaction.
  "/api/dtmsvr/forceStop": "admin",
  "/api/dtmsvr/resetNextCronTime": "admin",
  "/api/dtmsvr/resetCronTime": "admin",
  "/api/dtmsvr/all": "admin",
  "/api/dtmsvr/scanKV": "admin",
  "/api/dtmsvr/topic/:topicName": "admin",
  "/api/dtx/test/clock": "admin",
  "/api/dtx/test/cron": "admin",
  "/api/dtx/test/retention": "admin",
  "/api/dtx/test/settle": "admin",
  "/api/dtx/test/crash": "admin",
};

/** Every method of `dtmgimp.Dtm`; grpc.health.v1 and reflection stay open. */
export const GRPC_METHOD_ROLES: Readonly<Record<string, Role>> = {
  NewGid: "client",
  Submit: "client",
  Prepare: "client",
  Abort: "client",
  RegisterBranch: "client",
  PrepareWorkflow: "client",
  Subscribe: "client",
  Unsubscribe: "client",
  DeleteTopic: "admin",
};

/**
 * The two codes of a refused call. They are answered before any route runs, so they live here
 * rather than in ERROR_CATALOGUE; `docs/errors.md` documents them with it.
 */
export const AUTH_ERROR_CODES = {
  UNAUTHENTICATED: { httpStatus: 401, grpcCode: 16, description: "Authentication is on and the request carries no known bearer token." },
  FORBIDDEN: { httpStatus: 403, grpcCode: 7, description: "The bearer token is known but has no role that may call this route." },
} as const satisfies Record<string, ErrorSpec>;

export type AuthErrorCode = keyof typeof AUTH_ERROR_CODES;

/** A configured token: its name (for logs), the SHA-256 hex digest of the token, its roles. */
export interface TokenSpec {
  readonly name: string;
  readonly sha256: string;
  readonly roles: readonly Role[];
}

export type AuthResult = { ok: true; name: string } | { ok: false; code: AuthErrorCode; message: string };

const OPEN: AuthResult = { ok: true, name: "" };

/** The SHA-256 hex digest of a token, as `auth.tokens[].sha256` expects it. */
export function tokenDigest(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

interface StoredToken {
  readonly name: string;
  readonly digest: Buffer;
  readonly grants: ReadonlySet<Role>;
}

/** Checks bearer tokens against the configured digests. */
export class Authenticator {
  readonly #tokens: StoredToken[];

  constructor(tokens: readonly TokenSpec[]) {
    this.#tokens = tokens.map((t) => ({
      name: t.name,
      digest: Buffer.from(t.sha256, "hex"),
      grants: new Set(t.roles.flatMap((r) => GRANTS[r])),
    }));
  }

  /** False when no token is configured: every request is let through. */
  get enabled(): boolean {
    return this.#tokens.length > 0;
  }

  /**
   * Whether a request with this `Authorization` header (or gRPC `authorization` metadata) may
   * call something that needs `access`.
   */
  check(authorization: string | undefined, access: Access): AuthResult {
    if (!this.enabled || access === "open") return OPEN;
    const token = bearerToken(authorization);
    if (token === undefined) return { ok: false, code: "UNAUTHENTICATED", message: "this API needs an Authorization: Bearer <token> header" };
    const presented = createHash("sha256").update(token, "utf8").digest();
    // Every stored digest is compared, so the time taken does not tell which one matched.
    let found: StoredToken | undefined;
    for (const t of this.#tokens) {
      if (timingSafeEqual(presented, t.digest) && !found) found = t;
    }
    if (!found) return { ok: false, code: "UNAUTHENTICATED", message: "the bearer token is not known" };
    if (!found.grants.has(access)) return { ok: false, code: "FORBIDDEN", message: `the token ${JSON.stringify(found.name)} lacks the ${access} role` };
    return { ok: true, name: found.name };
  }
}

/** The token of `Bearer <token>` (scheme case-insensitive), or undefined. */
function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m?.[1];
}
