import http2 from "node:http2";
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, IncomingHttpStatusHeader, OutgoingHttpHeaders } from "node:http2";
import net from "node:net";
import { status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import type { Outcome } from "../core/types.ts";
import type { BranchCall, BranchInvoker } from "./invoker.ts";

/** dtm's default outgoing service config (PROTOCOL §6.2, `GrpcServiceConfig`). */
export const DEFAULT_GRPC_SERVICE_CONFIG = '{"loadBalancingConfig":[{"round_robin":{}}]}';
/** Beyond this many distinct targets the least recently used connection is closed. */
const MAX_CHANNELS = 1024;

export interface GrpcInvokerOptions {
  /** Accepted for compatibility; the built-in client has one connection per target and no balancing. */
  serviceConfig?: string;
  maxChannels?: number;
}

/** A gRPC branch URL `host:port/package.Service/Method`, split at the first `/` (PROTOCOL §6.2). */
export function parseGrpcUrl(url: string): { target: string; method: string } | undefined {
  if (url.includes("://")) return undefined;
  const slash = url.indexOf("/");
  if (slash <= 0 || slash === url.length - 1) return undefined;
  return { target: url.slice(0, slash), method: url.slice(slash) };
}

/** Protobuf encoding of `workflow.WorkflowData{bytes Data = 1}` (proto/wf.proto): tag 0x0a, length, bytes. */
export function encodeWorkflowData(data: Uint8Array): Buffer {
  if (data.byteLength === 0) return Buffer.alloc(0); // proto3 leaves a default field out
  const length: number[] = [];
  let n = data.byteLength;
  while (n > 0x7f) {
    length.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  length.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...length]), data]);
}

/**
 * The request message of a call. The stored `bin_data` is already a serialized protobuf written
 * by the client, so it is sent verbatim; the one exception is the workflow resume (branch `00`,
 * op = workflow name), whose callback `workflow.Workflow/Execute` takes `WorkflowData{Data}`
 * wrapping the workflow's input (PROTOCOL §7.5).
 */
export function requestMessage(call: BranchCall): Buffer {
  if (call.transType === "workflow" && call.branchId === "00") return encodeWorkflowData(call.body);
  return Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength);
}

/** dtm's `GrpcError2DtmError` (PROTOCOL §6.2). */
export function classifyGrpcResult(error: Pick<ServiceError, "code" | "details"> | null): Outcome {
  if (error === null || error.code === status.OK) return { kind: "success" };
  if (error.code === status.ABORTED) {
    return error.details === "ONGOING" ? { kind: "ongoing" } : { kind: "failure", message: error.details || "FAILURE" };
  }
  if (error.code === status.FAILED_PRECONDITION) return { kind: "ongoing" };
  return { kind: "error", message: `grpc ${status[error.code] ?? error.code}: ${error.details}` };
}

const {
  HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_TE, HTTP2_HEADER_USER_AGENT,
  NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM,
} = http2.constants;

const USER_AGENT = "dtx-grpc/1";
/** setTimeout's largest delay (about 25 days); longer deadlines are only sent as `grpc-timeout`. */
const MAX_TIMER_MS = 2_147_483_647;
const TIMEOUT_UNITS = [["m", 1], ["S", 1000], ["M", 60_000], ["H", 3_600_000]] as const;
const LEGAL_KEY = /^[:0-9a-z_.-]+$/;
const LEGAL_NON_BINARY_VALUE = /^[ -~]*$/;

const noop = (): void => {};

interface GrpcStatus {
  code: number;
  details: string;
}

/**
 * Calls participants over gRPC as dtm does (PROTOCOL §6.2): an insecure HTTP/2 connection per
 * `host:port`, the raw payload as the request, metadata `dtm-gid`, `dtm-trans_type`,
 * `dtm-branch_id`, `dtm-op`, `dtm-dtm` plus the trans's branch_headers, and the call's timeout as
 * the deadline. The answer's bytes are ignored; only its status counts.
 *
 * This is a minimal gRPC unary client on node:http2 (the coordinator's hot path: grpc-js's
 * channel/call machinery cost measurably more CPU per branch call). One session is cached per
 * target; a session that errors, closes or receives GOAWAY is dropped at once, so the next call
 * to that target connects afresh (no reconnect backoff: the coordinator retries on its own
 * schedule). No keepalive pings: grpc-go servers refuse pings more often than every 5 minutes by
 * default (GOAWAY too_many_pings).
 */
export class GrpcInvoker implements BranchInvoker {
  private readonly cache = new Map<string, ClientHttp2Session>();
  private readonly maxChannels: number;
  private closed = false;

  constructor(options: GrpcInvokerOptions = {}) {
    this.maxChannels = options.maxChannels ?? MAX_CHANNELS;
  }

  invoke(call: BranchCall): Promise<Outcome> {
    const parsed = parseGrpcUrl(call.url);
    if (!parsed) return Promise.resolve({ kind: "error", message: `invalid gRPC url ${JSON.stringify(call.url)}: expected host:port/package.Service/Method` });
    if (this.closed) return Promise.resolve({ kind: "error", message: "the gRPC invoker is closed" });
    let headers: OutgoingHttpHeaders;
    try {
      headers = metadataOf(call);
    } catch (error) {
      return Promise.resolve({ kind: "error", message: `cannot send branch_headers as gRPC metadata: ${(error as Error).message}` });
    }
    headers[HTTP2_HEADER_METHOD] = "POST";
    headers[HTTP2_HEADER_PATH] = parsed.method;
    headers[HTTP2_HEADER_CONTENT_TYPE] = "application/grpc";
    headers[HTTP2_HEADER_TE] = "trailers";
    headers[HTTP2_HEADER_USER_AGENT] = USER_AGENT;
    headers["grpc-accept-encoding"] = "identity";
    headers["accept-encoding"] = "identity";
    headers["grpc-timeout"] = grpcTimeout(call.timeoutMs);
    delete headers["grpc-encoding"]; // the message is uncompressed (grpc-js drops it for identity too)
    const frame = grpcFrame(requestMessage(call));
    return new Promise<Outcome>((resolve) => {
      const done = (result: GrpcStatus): void => {
        const outcome = classifyGrpcResult(result);
        resolve(outcome.kind === "error" ? { kind: "error", message: `${call.url}: ${outcome.message}` } : outcome);
      };
      let session: ClientHttp2Session;
      try {
        session = this.session(parsed.target);
      } catch (error) {
        done({ code: status.UNAVAILABLE, details: (error as Error).message });
        return;
      }
      unaryCall(session, headers, frame, call.timeoutMs, done);
    });
  }

  /** Number of cached connections (for tests). */
  get channels(): number {
    return this.cache.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const sessions = [...this.cache.values()];
    this.cache.clear();
    for (const session of sessions) session.close();
  }

  private session(target: string): ClientHttp2Session {
    const cached = this.cache.get(target);
    if (cached && !cached.closed && !cached.destroyed) {
      // Map order doubles as the LRU order.
      this.cache.delete(target);
      this.cache.set(target, cached);
      return cached;
    }
    if (cached) this.cache.delete(target);
    const { host, port } = hostPort(target);
    const session = http2.connect(`http://${target}`, {
      createConnection: () => net.connect({ host, port, noDelay: true }),
      settings: { enablePush: false },
    });
    const drop = (): void => {
      if (this.cache.get(target) === session) this.cache.delete(target);
    };
    session.on("error", drop); // a listener also keeps a connection error from being thrown
    session.on("goaway", drop);
    session.on("close", drop);
    // An idle connection does not hold the process open; a call in flight has its deadline timer.
    session.unref();
    this.cache.set(target, session);
    if (this.cache.size > this.maxChannels) {
      const [oldestTarget, oldest] = this.cache.entries().next().value as [string, ClientHttp2Session];
      this.cache.delete(oldestTarget);
      oldest.close();
    }
    return session;
  }
}

/** One unary call on `session`; `done` gets the call's status exactly once. */
function unaryCall(session: ClientHttp2Session, headers: OutgoingHttpHeaders, frame: Buffer, timeoutMs: number, done: (result: GrpcStatus) => void): void {
  let stream: ClientHttp2Stream;
  try {
    stream = session.request(headers, { endStream: false });
  } catch (error) {
    done({ code: status.UNAVAILABLE, details: (error as Error).message });
    return;
  }
  let finished = false;
  let httpStatus: number | undefined;
  let internalError: (Error & { code?: string }) | undefined;
  const finish = (code: number, details: string): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    done({ code, details });
  };
  const timer = setTimeout(() => {
    finish(status.DEADLINE_EXCEEDED, `Deadline exceeded after ${(timeoutMs / 1000).toFixed(3)}s`);
    stream.close(NGHTTP2_CANCEL);
  }, Math.min(Math.max(timeoutMs, 0), MAX_TIMER_MS));
  const onTrailers = (trailers: IncomingHttpHeaders): void => {
    const result = statusOf(trailers, httpStatus);
    finish(result.code, result.details);
  };
  stream.on("response", (responseHeaders: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number) => {
    httpStatus = responseHeaders[":status"];
    if (flags & NGHTTP2_FLAG_END_STREAM) onTrailers(responseHeaders); // a trailers-only response
  });
  stream.on("trailers", onTrailers);
  // The answer's bytes are ignored; keep reading so a misbehaving server cannot stall the status.
  stream.on("data", noop);
  stream.on("error", (error: Error & { code?: string }) => {
    if (error.code !== "ERR_HTTP2_STREAM_ERROR") internalError = error;
  });
  stream.on("close", () => {
    if (finished) return;
    const result = closedWithoutStatus(stream.rstCode, httpStatus, internalError, session);
    finish(result.code, result.details);
  });
  stream.end(frame);
}

/** The status of a call from its trailers (grpc-js's rules). */
function statusOf(trailers: IncomingHttpHeaders, httpStatus: number | undefined): GrpcStatus {
  const code = first(trailers["grpc-status"]);
  if (code !== undefined) {
    const message = first(trailers["grpc-message"]);
    let details = "";
    if (message !== undefined) {
      try {
        details = decodeURI(message);
      } catch {
        details = message;
      }
    }
    return { code: Number(code), details };
  }
  if (httpStatus !== undefined) return mapHttpStatus(httpStatus);
  return { code: status.UNKNOWN, details: "No status information received" };
}

/** The status of a stream that closed before its status arrived (grpc-js's rules). */
function closedWithoutStatus(rstCode: number | undefined, httpStatus: number | undefined, internalError: (Error & { code?: string }) | undefined, session: ClientHttp2Session): GrpcStatus {
  // The connection failed or went away (a refused connect closes the streams queued on it).
  if (internalError !== undefined && internalError.code !== "ERR_HTTP2_STREAM_CANCEL" || session.destroyed) {
    return { code: status.UNAVAILABLE, details: internalError?.message ?? "Connection dropped" };
  }
  switch (rstCode) {
    case NGHTTP2_NO_ERROR:
      if (httpStatus !== undefined && httpStatus !== 200) return mapHttpStatus(httpStatus);
      return { code: status.INTERNAL, details: `Received RST_STREAM with code ${rstCode} (Call ended without gRPC status)` };
    case NGHTTP2_REFUSED_STREAM:
      return { code: status.UNAVAILABLE, details: "Stream refused by server" };
    case NGHTTP2_CANCEL:
      return { code: status.CANCELLED, details: "Call cancelled" };
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return { code: status.RESOURCE_EXHAUSTED, details: "Bandwidth exhausted or memory limit exceeded" };
    case NGHTTP2_INADEQUATE_SECURITY:
      return { code: status.PERMISSION_DENIED, details: "Protocol not secure enough" };
    case NGHTTP2_INTERNAL_ERROR:
      return { code: status.INTERNAL, details: `Received RST_STREAM with code ${rstCode} (Internal server error)` };
    default:
      return { code: status.INTERNAL, details: `Received RST_STREAM with code ${rstCode}` };
  }
}

function mapHttpStatus(httpStatus: number): GrpcStatus {
  const details = `Received HTTP status code ${httpStatus}`;
  switch (httpStatus) {
    case 400: return { code: status.INTERNAL, details };
    case 401: return { code: status.UNAUTHENTICATED, details };
    case 403: return { code: status.PERMISSION_DENIED, details };
    case 404: return { code: status.UNIMPLEMENTED, details };
    case 429: case 502: case 503: case 504: return { code: status.UNAVAILABLE, details };
    default: return { code: status.UNKNOWN, details };
  }
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** A length-prefixed gRPC message: uncompressed flag 0, uint32 big-endian length, the bytes. */
function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.byteLength);
  frame[0] = 0;
  frame.writeUInt32BE(message.byteLength, 1);
  message.copy(frame, 5);
  return frame;
}

/** The `grpc-timeout` header for a deadline `timeoutMs` from now (grpc-js's encoding). */
function grpcTimeout(timeoutMs: number): string {
  const ms = Math.max(timeoutMs, 0);
  for (const [unit, factor] of TIMEOUT_UNITS) {
    const amount = ms / factor;
    if (amount < 1e8) return `${Math.ceil(amount)}${unit}`;
  }
  return "99999999H";
}

/** `host:port` → the address to connect to (grpc's default port is 443, as grpc-js assumes). */
function hostPort(target: string): { host: string; port: number } {
  const url = new URL(`http://${target}`);
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port !== "" ? Number(url.port) : /:80$/.test(target) ? 80 : 443;
  return { host, port };
}

/**
 * The call's metadata as HTTP/2 headers, with grpc-js's `Metadata` rules: keys lower-cased and
 * limited to `[0-9a-z_.-]` (a `:` key is accepted but not sent), `-bin` values are the header's
 * latin1 bytes in base64, other values printable ASCII; a later key replaces an earlier one.
 */
function metadataOf(call: BranchCall): OutgoingHttpHeaders {
  const headers = Object.create(null) as OutgoingHttpHeaders;
  headers["dtm-gid"] = legalValue(call.gid);
  headers["dtm-trans_type"] = legalValue(call.transType);
  headers["dtm-branch_id"] = legalValue(call.branchId);
  headers["dtm-op"] = legalValue(call.op);
  headers["dtm-dtm"] = "";
  for (const [name, value] of Object.entries(call.headers)) {
    const key = name.toLowerCase();
    if (!LEGAL_KEY.test(key)) throw new Error(`Metadata key "${key}" contains illegal characters`);
    if (key.startsWith(":")) continue;
    headers[key] = key.endsWith("-bin") ? Buffer.from(value, "latin1").toString("base64") : legalValue(value);
  }
  return headers;
}

function legalValue(value: string): string {
  if (!LEGAL_NON_BINARY_VALUE.test(value)) throw new Error(`Metadata string value "${value}" contains illegal characters`);
  return value;
}
