import { status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import type { Outcome } from "../core/types.ts";
import { ErrorCode } from "./h2/frames.ts";
import type { StreamEnd } from "./h2/h2-connection.ts";
import { H2Connection } from "./h2/h2-connection.ts";
import type { HeaderField } from "./h2/hpack.ts";
import type { BranchSigner } from "./branch-signer.ts";
import { grpcSignatureMetadata } from "./branch-signer.ts";
import type { BranchCall, BranchInvoker } from "./invoker.ts";
import type { BranchClientLimits } from "./origin-limiter.ts";
import { DEFAULT_BRANCH_CLIENT_LIMITS, OriginLimiter } from "./origin-limiter.ts";

/** dtm's default outgoing service config (docs/protocol.md#grpc-branch-calls, `GrpcServiceConfig`). */
export const DEFAULT_GRPC_SERVICE_CONFIG = '{"loadBalancingConfig":[{"round_robin":{}}]}';
/** Beyond this many distinct targets the least recently used connection is closed. */
const MAX_CHANNELS = 1024;

export interface GrpcInvokerOptions {
  /** Accepted for compatibility; the built-in client has one connection per target and no balancing. */
  serviceConfig?: string;
  maxChannels?: number;
  /** Calls in flight per target (running or waiting for a stream): `connections + queue` (docs/overload.md). */
  limits?: BranchClientLimits;
  /** Signs each call with `x-dtx-signature` metadata (docs/security.md#signed-branch-calls). */
  signer?: BranchSigner;
}

/** A gRPC branch URL `host:port/package.Service/Method`, split at the first `/` (docs/protocol.md#grpc-branch-calls). */
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
 * wrapping the workflow's input (docs/protocol.md#workflow).
 */
export function requestMessage(call: BranchCall): Buffer {
  if (call.transType === "workflow" && call.branchId === "00") return encodeWorkflowData(call.body);
  return Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength);
}

/** dtm's `GrpcError2DtmError` (docs/protocol.md#grpc-branch-calls). */
export function classifyGrpcResult(error: Pick<ServiceError, "code" | "details"> | null): Outcome {
  if (error === null || error.code === status.OK) return { kind: "success" };
  if (error.code === status.ABORTED) {
    return error.details === "ONGOING" ? { kind: "ongoing" } : { kind: "failure", message: error.details || "FAILURE" };
  }
  if (error.code === status.FAILED_PRECONDITION) return { kind: "ongoing" };
  if (error.code === status.UNAUTHENTICATED) return { kind: "error", message: `grpc UNAUTHENTICATED: ${error.details}`, unauthenticated: true };
  return { kind: "error", message: `grpc ${status[error.code] ?? error.code}: ${error.details}` };
}

const USER_AGENT = "dtx-grpc/1";
/** setTimeout's largest delay (about 25 days); longer deadlines are only sent as `grpc-timeout`. */
const MAX_TIMER_MS = 2_147_483_647;
const TIMEOUT_UNITS = [["m", 1], ["S", 1000], ["M", 60_000], ["H", 3_600_000]] as const;
const LEGAL_KEY = /^[:0-9a-z_.-]+$/;
const LEGAL_NON_BINARY_VALUE = /^[ -~]*$/;
/** Headers the call sets itself; a branch header of the same name is not sent. */
const RESERVED = new Set(["content-type", "te", "user-agent", "grpc-accept-encoding", "accept-encoding", "grpc-timeout", "grpc-encoding"]);
/** Connection-specific headers, which HTTP/2 forbids (RFC 9113 §8.2.2); a branch header of that name is dropped. */
const CONNECTION_SPECIFIC = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]);

interface GrpcStatus {
  code: number;
  details: string;
}

/**
 * Calls participants over gRPC as dtm does (docs/protocol.md#grpc-branch-calls): an insecure HTTP/2 connection per
 * `host:port`, the raw payload as the request, metadata `dtm-gid`, `dtm-trans_type`,
 * `dtm-branch_id`, `dtm-op`, `dtm-dtm` plus the trans's branch_headers, and the call's timeout as
 * the deadline. The answer's bytes are ignored; only its status counts.
 *
 * This is a minimal gRPC unary client on dtx's own HTTP/2 connection ({@link H2Connection}: the
 * coordinator's hot path, where grpc-js's channels and node:http2's deferred writes both cost
 * throughput). One connection is cached per target; a connection that errors, closes or receives
 * GOAWAY is dropped at once, so the next call to that target connects afresh (no reconnect
 * backoff: the coordinator retries on its own schedule), and one that stayed silent through a
 * call's whole deadline is dropped when that call times out. No keepalive pings: grpc-go servers refuse pings
 * more often than every 5 minutes by default (GOAWAY too_many_pings).
 */
export class GrpcInvoker implements BranchInvoker {
  private readonly cache = new Map<string, H2Connection>();
  private readonly maxChannels: number;
  private readonly limiter: OriginLimiter;
  private readonly signer: BranchSigner | undefined;
  private closed = false;

  constructor(options: GrpcInvokerOptions = {}) {
    this.signer = options.signer;
    this.maxChannels = options.maxChannels ?? MAX_CHANNELS;
    this.limiter = new OriginLimiter(options.limits ?? DEFAULT_BRANCH_CLIENT_LIMITS);
  }

  invoke(call: BranchCall): Promise<Outcome> {
    const parsed = parseGrpcUrl(call.url);
    if (!parsed) return Promise.resolve({ kind: "error", message: `invalid gRPC url ${JSON.stringify(call.url)}: expected host:port/package.Service/Method` });
    if (this.closed) return Promise.resolve({ kind: "error", message: "the gRPC invoker is closed" });
    const message = requestMessage(call);
    let fields: HeaderField[];
    try {
      fields = requestHeaders(call, parsed.target, parsed.method, grpcSignatureMetadata(this.signer, parsed.method, message));
    } catch (error) {
      return Promise.resolve({ kind: "error", message: `cannot send branch_headers as gRPC metadata: ${(error as Error).message}` });
    }
    const frame = grpcFrame(message);
    return this.limiter.run(parsed.target, () => this.send(call, parsed.target, fields, frame));
  }

  private send(call: BranchCall, target: string, fields: HeaderField[], frame: Buffer): Promise<Outcome> {
    return new Promise<Outcome>((resolve) => {
      const done = (result: GrpcStatus): void => {
        const outcome = classifyGrpcResult(result);
        resolve(outcome.kind === "error" ? { ...outcome, message: `${call.url}: ${outcome.message}` } : outcome);
      };
      let connection: H2Connection;
      try {
        connection = this.connection(target);
      } catch (error) {
        done({ code: status.UNAVAILABLE, details: (error as Error).message });
        return;
      }
      unaryCall(connection, fields, frame, call.timeoutMs, done, call.signal);
    });
  }

  /** Number of cached connections (for tests). */
  get channels(): number {
    return this.cache.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const connections = [...this.cache.values()];
    this.cache.clear();
    for (const connection of connections) connection.close();
  }

  private connection(target: string): H2Connection {
    const cached = this.cache.get(target);
    if (cached?.acceptsStreams) {
      // Map order doubles as the LRU order.
      this.cache.delete(target);
      this.cache.set(target, cached);
      return cached;
    }
    if (cached) {
      this.cache.delete(target);
      cached.close(); // out of stream ids: finishes its running calls, then ends (a no-op if already gone)
    }
    const { host, port } = hostPort(target);
    const connection: H2Connection = new H2Connection(host, port, () => {
      if (this.cache.get(target) === connection) this.cache.delete(target);
    });
    this.cache.set(target, connection);
    if (this.cache.size > this.maxChannels) {
      const [oldestTarget, oldest] = this.cache.entries().next().value as [string, H2Connection];
      this.cache.delete(oldestTarget);
      oldest.close();
    }
    return connection;
  }
}

/** One unary call on `connection`; `done` gets the call's status exactly once. */
function unaryCall(
  connection: H2Connection, fields: HeaderField[], frame: Buffer, timeoutMs: number, done: (result: GrpcStatus) => void, signal?: AbortSignal,
): void {
  const started = performance.now();
  let finished = false;
  let httpStatus: number | undefined;
  let sawHeaders = false;
  const cutOff = (): void => {
    finish(status.CANCELLED, `Cancelled: ${String((signal?.reason as Error | undefined)?.message ?? "the pass ended")}`);
    stream.cancel();
  };
  const finish = (code: number, details: string): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    signal?.removeEventListener("abort", cutOff);
    done({ code, details });
  };
  const stream = connection.request(fields, frame, {
    onHeaders(block, endStream) {
      const headers = headerMap(block);
      if (!sawHeaders) {
        sawHeaders = true;
        const code = Number(headers.get(":status"));
        httpStatus = Number.isInteger(code) ? code : undefined;
        if (!endStream) return; // trailers follow; a block that ends the stream is trailers-only
      }
      const result = statusOf(headers, httpStatus);
      finish(result.code, result.details);
    },
    onClose(end) {
      if (finished) return;
      const result = closedWithoutStatus(end, httpStatus);
      finish(result.code, result.details);
    },
  });
  const timer = setTimeout(() => {
    finish(status.DEADLINE_EXCEEDED, `Deadline exceeded after ${(timeoutMs / 1000).toFixed(3)}s`);
    stream.cancel();
    // A connection silent for the whole deadline is dropped, so the next call connects afresh.
    if (!connection.heardSince(started)) connection.destroy(`no answer from the server for ${timeoutMs} ms`);
  }, Math.min(Math.max(timeoutMs, 0), MAX_TIMER_MS));
  if (signal?.aborted) cutOff();
  else signal?.addEventListener("abort", cutOff, { once: true });
}

/** Field name → first value. */
function headerMap(block: readonly HeaderField[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const [name, value] of block) if (!map.has(name)) map.set(name, value);
  return map;
}

/** The status of a call from its trailers (grpc-js's rules). */
function statusOf(trailers: Map<string, string>, httpStatus: number | undefined): GrpcStatus {
  const code = trailers.get("grpc-status");
  if (code !== undefined) {
    const message = trailers.get("grpc-message");
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

/** The status of a stream that ended before its status arrived (grpc-js's rules). */
function closedWithoutStatus(end: StreamEnd, httpStatus: number | undefined): GrpcStatus {
  // The connection failed or went away (a refused connect ends the streams waiting on it).
  if (end.kind === "unavailable") return { code: status.UNAVAILABLE, details: end.message };
  if (end.kind === "ended") return statusOf(new Map(), httpStatus);
  switch (end.code) {
    case ErrorCode.NO_ERROR:
      if (httpStatus !== undefined && httpStatus !== 200) return mapHttpStatus(httpStatus);
      return { code: status.INTERNAL, details: `Received RST_STREAM with code ${end.code} (Call ended without gRPC status)` };
    case ErrorCode.REFUSED_STREAM:
      return { code: status.UNAVAILABLE, details: "Stream refused by server" };
    case ErrorCode.CANCEL:
      return { code: status.CANCELLED, details: "Call cancelled" };
    case ErrorCode.ENHANCE_YOUR_CALM:
      return { code: status.RESOURCE_EXHAUSTED, details: "Bandwidth exhausted or memory limit exceeded" };
    case ErrorCode.INADEQUATE_SECURITY:
      return { code: status.PERMISSION_DENIED, details: "Protocol not secure enough" };
    case ErrorCode.INTERNAL_ERROR:
      return { code: status.INTERNAL, details: `Received RST_STREAM with code ${end.code} (Internal server error)` };
    default:
      return { code: status.INTERNAL, details: `Received RST_STREAM with code ${end.code}` };
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
 * The request's header block: pseudo-headers, the gRPC headers, then the call's metadata with
 * grpc-js's `Metadata` rules: keys lower-cased and limited to `[0-9a-z_.-]` (a `:` key is
 * accepted but not sent), `-bin` values are the header's latin1 bytes in base64, other values
 * printable ASCII; a later key replaces an earlier one.
 */
function requestHeaders(call: BranchCall, authority: string, path: string, signature: [string, string][]): HeaderField[] {
  const metadata = new Map<string, string>([
    ["dtm-gid", legalValue(call.gid)],
    ["dtm-trans_type", legalValue(call.transType)],
    ["dtm-branch_id", legalValue(call.branchId)],
    ["dtm-op", legalValue(call.op)],
    ["dtm-dtm", ""],
  ]);
  for (const [name, value] of Object.entries(call.headers)) {
    const key = name.toLowerCase();
    if (!LEGAL_KEY.test(key)) throw new Error(`Metadata key "${key}" contains illegal characters`);
    if (key.startsWith(":") || RESERVED.has(key) || CONNECTION_SPECIFIC.has(key)) continue;
    metadata.set(key, key.endsWith("-bin") ? Buffer.from(value, "latin1").toString("base64") : legalValue(value));
  }
  for (const [key, value] of signature) metadata.set(key, value);
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", authority],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ["user-agent", USER_AGENT],
    ["grpc-accept-encoding", "identity"],
    ["accept-encoding", "identity"],
    ["grpc-timeout", grpcTimeout(call.timeoutMs)],
    ...metadata,
  ];
}

function legalValue(value: string): string {
  if (!LEGAL_NON_BINARY_VALUE.test(value)) throw new Error(`Metadata string value "${value}" contains illegal characters`);
  return value;
}
