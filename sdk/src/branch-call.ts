import type { DtxClient } from "./client.ts";
import { DtxError, invalidArgument } from "./errors.ts";
import { payloadBytes } from "./payload.ts";
import { isHttpUrl, parseGrpcUrl } from "./transport/grpc-runtime.ts";
import { httpCall, throwForParticipantAnswer } from "./transport/http-call.ts";
import type { Payload } from "./types.ts";

/** A participant's answer to a call the SDK made (TCC Try, XA action, workflow step). */
export interface BranchResponse {
  /** HTTP status (200 for a successful gRPC call). */
  readonly status: number;
  /** The raw body (gRPC: the serialized response message). */
  readonly body: Buffer;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
}

/** Builds a {@link BranchResponse}. */
export function branchResponse(status: number, body: Uint8Array): BranchResponse {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return {
    status,
    body: buf,
    text: () => buf.toString("utf8"),
    json: <T>() => {
      try {
        return JSON.parse(buf.toString("utf8")) as T;
      } catch (err) {
        throw new DtxError("PROTOCOL_ERROR", `the participant's answer is not JSON: ${buf.toString("utf8").slice(0, 200)}`, { cause: err });
      }
    },
  };
}

/** One call from the application to a participant (docs/protocol.md#what-clients-send `TransRequestBranch`). */
export interface BranchRequest {
  /** `http(s)://...` or a gRPC target `host:port/package.Service/Method`. */
  readonly url: string;
  /** HTTP method (default POST; ignored over gRPC). */
  readonly method?: string;
  /** The body; `undefined` sends none over HTTP (an empty message over gRPC). */
  readonly payload?: Payload;
  /** Branch parameters: `dtm`, `gid`, `trans_type`, `branch_id`, `op` (+ `phase2_url`): query params over HTTP, `dtm-*` metadata over gRPC. */
  readonly params: Record<string, string>;
  /** Extra headers / metadata (the transaction's branch headers). */
  readonly headers?: Record<string, string>;
  /** Timeout of the call, in ms. */
  readonly timeoutMs: number;
}

/**
 * Calls a participant as dtm's SDK does and decodes its answer (docs/protocol.md#what-clients-send): resolves on
 * SUCCESS; throws {@link DtxFailure} for HTTP 409 / a body with FAILURE / gRPC ABORTED,
 * {@link DtxOngoing} for 425 / ONGOING / FAILED_PRECONDITION, another {@link DtxError} otherwise.
 */
export async function requestBranch(client: DtxClient, req: BranchRequest): Promise<BranchResponse> {
  if (isHttpUrl(req.url)) return requestHttpBranch(req);
  const grpcUrl = parseGrpcUrl(req.url);
  if (!grpcUrl) throw invalidArgument(`branch URL must be http(s)://... or host:port/package.Service/Method; got ${JSON.stringify(req.url)}`);
  const metadata: Record<string, string> = { ...(req.headers ?? {}) };
  for (const [k, v] of Object.entries(req.params)) metadata[`dtm-${k}`] = v;
  const reply = await client.grpcChannels.unary({
    target: grpcUrl.target,
    path: grpcUrl.path,
    request: req.payload === undefined ? new Uint8Array(0) : payloadBytes(req.payload),
    metadata,
    timeoutMs: req.timeoutMs,
  });
  return branchResponse(200, reply);
}

async function requestHttpBranch(req: BranchRequest): Promise<BranchResponse> {
  const target = new URL(req.url);
  for (const [k, v] of Object.entries(req.params)) target.searchParams.set(k, v);
  const method = req.method ?? "POST";
  const hasBody = req.payload !== undefined && method !== "GET" && method !== "HEAD";
  const answer = await httpCall({
    method,
    url: target.toString(),
    headers: { ...(hasBody ? { "content-type": "application/json" } : {}), ...(req.headers ?? {}) },
    ...(hasBody ? { body: payloadBytes(req.payload) } : {}),
    timeoutMs: req.timeoutMs,
  });
  throwForParticipantAnswer(`${method} ${req.url}`, answer.status, answer.body.toString("utf8"));
  return branchResponse(answer.status, answer.body);
}

/** The timeout of the SDK's calls to participants: the transaction's `requestTimeout` (seconds), else the client's default. */
export function branchTimeoutMs(client: DtxClient, requestTimeoutSeconds: number | undefined): number {
  return requestTimeoutSeconds ? requestTimeoutSeconds * 1000 : client.branchTimeoutMs;
}
