import { DtxError, invalidArgument } from "../errors.ts";
import { bytesText } from "../payload.ts";
import { httpCall, throwForCoordinatorAnswer } from "./http-call.ts";
import type { BranchRegistration, GlobalRequest, QueryReply, Transport, WorkflowPrepareReply } from "./transport.ts";

/** The API prefix dtm serves its HTTP routes under. */
export const DTM_API_PREFIX = "/api/dtmsvr";

/** Options of {@link HttpTransport}. */
export interface HttpTransportOptions {
  /** Timeout of each call to the coordinator, in ms (default 30 000). */
  readonly timeoutMs?: number;
  /** A bearer token, sent as `Authorization: Bearer <token>` on every call (for a coordinator with auth on). */
  readonly token?: string;
}

/**
 * Normalises a coordinator HTTP address: `http://host:36789` and `http://host:36789/` become
 * `http://host:36789/api/dtmsvr`; a URL with a path is kept as given (minus a trailing slash).
 */
export function normalizeServerUrl(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw invalidArgument(`server must be an http(s) URL such as http://127.0.0.1:36789/api/dtmsvr; got ${JSON.stringify(server)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalidArgument(`server must be an http(s) URL; got ${JSON.stringify(server)}`);
  const trimmed = server.replace(/\/+$/, "");
  return url.pathname === "/" || url.pathname === "" ? `${trimmed}${DTM_API_PREFIX}` : trimmed;
}

/**
 * The JSON body dtm's Go SDK sends for a `TransBase` (docs/protocol.md#request-bodies), keys in Go's field order:
 * gid, trans_type, custom_data, steps, payloads, query_prepared, protocol, rollback_reason, the
 * options, and `concurrent` (always present).
 */
export function transBody(req: GlobalRequest): Record<string, unknown> {
  const o = req.options ?? {};
  const body: Record<string, unknown> = { gid: req.gid, trans_type: req.transType };
  const customData = req.customData ?? o.customData;
  if (customData) body["custom_data"] = customData;
  if (req.steps && req.steps.length > 0) body["steps"] = req.steps;
  if (req.payloads && req.payloads.length > 0) body["payloads"] = req.payloads.map(bytesText);
  if (req.queryPrepared) body["query_prepared"] = req.queryPrepared;
  body["protocol"] = req.protocol ?? "";
  if (req.rollbackReason) body["rollback_reason"] = req.rollbackReason;
  if (o.waitResult) body["wait_result"] = true;
  if (o.timeoutToFail) body["timeout_to_fail"] = o.timeoutToFail;
  if (o.requestTimeout) body["request_timeout"] = o.requestTimeout;
  if (o.retryInterval) body["retry_interval"] = o.retryInterval;
  if (o.branchHeaders && Object.keys(o.branchHeaders).length > 0) body["branch_headers"] = o.branchHeaders;
  body["concurrent"] = req.concurrent ?? false;
  if (o.retryLimit) body["retry_limit"] = o.retryLimit;
  if (req.reqExtra) body["req_extra"] = req.reqExtra;
  return body;
}

/** `{ authorization: "Bearer <token>" }`, or nothing without a token; a token that cannot be a header value is refused. */
export function authorizationHeader(token: string | undefined): Record<string, string> {
  if (token === undefined || token === "") return {};
  if (!/^[\x21-\x7e]+$/.test(token)) throw invalidArgument("token must be printable ASCII without spaces");
  return { authorization: `Bearer ${token}` };
}

/** Talks to the coordinator's HTTP API (`/api/dtmsvr/*`, docs/protocol.md#http-api) with the global `fetch`. */
export class HttpTransport implements Transport {
  /** Always `http`. */
  readonly protocol = "http" as const;
  /** The API prefix URL, e.g. `http://127.0.0.1:36789/api/dtmsvr`. */
  readonly server: string;
  readonly #timeoutMs: number;
  readonly #authHeaders: Record<string, string>;

  /**
   * @param server the coordinator's HTTP API, e.g. `http://127.0.0.1:36789/api/dtmsvr` (a bare origin gets `/api/dtmsvr` appended)
   * @param options timeouts and the bearer token
   */
  constructor(server: string, options: HttpTransportOptions = {}) {
    this.server = normalizeServerUrl(server);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.#authHeaders = authorizationHeader(options.token);
  }

  /** `GET newGid`. */
  async newGid(): Promise<string> {
    const reply = await this.#call("GET", "newGid", undefined, true);
    const gid = (reply as { gid?: unknown } | undefined)?.gid;
    if (typeof gid !== "string" || gid === "") throw new DtxError("PROTOCOL_ERROR", "newGid: the answer has no gid");
    return gid;
  }

  /** `POST prepare`. */
  async prepare(request: GlobalRequest): Promise<void> {
    await this.#call("POST", "prepare", transBody(request), true);
  }

  /** `POST submit`. */
  async submit(request: GlobalRequest): Promise<void> {
    await this.#call("POST", "submit", transBody(request), true);
  }

  /** `POST abort`. */
  async abort(request: GlobalRequest): Promise<void> {
    await this.#call("POST", "abort", transBody(request), true);
  }

  /** `POST registerBranch` with dtm's flat string map. */
  async registerBranch(request: BranchRegistration): Promise<void> {
    const body = { ...request.extra, gid: request.gid, trans_type: request.transType, branch_id: request.branchId, data: bytesText(request.data) };
    await this.#call("POST", "registerBranch", body, true);
  }

  /** `POST prepareWorkflow`. */
  async prepareWorkflow(request: GlobalRequest): Promise<WorkflowPrepareReply> {
    const reply = (await this.#call("POST", "prepareWorkflow", transBody(request), false)) as
      | { transaction?: Record<string, unknown> | null; progresses?: Record<string, unknown>[] | null }
      | undefined;
    const t = reply?.transaction;
    if (!t || typeof t !== "object") throw new DtxError("PROTOCOL_ERROR", "prepareWorkflow: the answer has no transaction");
    const str = (v: unknown): string => (typeof v === "string" ? v : "");
    return {
      transaction: {
        gid: str(t["gid"]),
        status: str(t["status"]),
        rollbackReason: str(t["rollback_reason"]),
        result: str(t["result"]),
        customData: str(t["custom_data"]),
      },
      progresses: (reply?.progresses ?? []).map((p) => ({
        branchId: str(p["branch_id"]),
        op: str(p["op"]),
        status: str(p["status"]),
        data: Buffer.from(str(p["bin_data"]), "base64"),
      })),
    };
  }

  /** `GET query?gid=`. */
  async query(gid: string): Promise<QueryReply> {
    const reply = (await this.#call("GET", `query?gid=${encodeURIComponent(gid)}`, undefined, false)) as Partial<QueryReply> | undefined;
    return { transaction: reply?.transaction ?? null, branches: reply?.branches ?? [] };
  }

  /** Nothing to release: `fetch` pools connections globally. */
  async close(): Promise<void> {}

  async #call(method: "GET" | "POST", path: string, body: unknown, legacyFailureWord: boolean): Promise<unknown> {
    const url = `${this.server}/${path}`;
    const answer = await httpCall({
      method,
      url,
      timeoutMs: this.#timeoutMs,
      headers: body !== undefined ? { ...this.#authHeaders, "content-type": "application/json" } : this.#authHeaders,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = answer.body.toString("utf8");
    throwForCoordinatorAnswer(`${method} ${path.split("?")[0] ?? path}`, answer.status, text, legacyFailureWord);
    if (text === "") return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new DtxError("PROTOCOL_ERROR", `${method} ${url}: the answer is not JSON: ${text.slice(0, 200)}`, { cause: err, httpStatus: answer.status });
    }
  }
}
