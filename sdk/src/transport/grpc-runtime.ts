/**
 * Lazy access to the optional peer dependency `@grpc/grpc-js`: HTTP-only applications never load
 * it. Public types of the SDK do not mention grpc-js types, so they type-check without it.
 */
import type * as GrpcJs from "@grpc/grpc-js";
import type { Client } from "@grpc/grpc-js";
import { DtxError, DtxFailure, DtxOngoing } from "../errors.ts";

type GrpcModule = typeof GrpcJs;

/** gRPC status codes used by the SDK (numeric, so no runtime import is needed). */
export const GrpcStatus = {
  OK: 0,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

let grpcModule: Promise<GrpcModule> | undefined;

/** Loads `@grpc/grpc-js` once; UNSUPPORTED when it is not installed. */
function loadGrpc(): Promise<GrpcModule> {
  grpcModule ??= import("@grpc/grpc-js").catch((err: unknown) => {
    grpcModule = undefined;
    throw new DtxError("UNSUPPORTED", "gRPC needs the optional peer dependency @grpc/grpc-js (npm install @grpc/grpc-js)", { cause: err });
  });
  return grpcModule;
}

/** A gRPC target `host:port/package.Service/Method`, split at the first `/` (docs/protocol.md#grpc-branch-calls). */
export function parseGrpcUrl(url: string): { target: string; path: string } | undefined {
  if (url.includes("://")) return undefined;
  const slash = url.indexOf("/");
  if (slash <= 0 || slash === url.length - 1) return undefined;
  return { target: url.slice(0, slash), path: url.slice(slash) };
}

/** Whether `url` is an HTTP(S) URL (otherwise a gRPC target). */
export function isHttpUrl(url: string): boolean {
  return url.startsWith("http://") || url.startsWith("https://");
}

/**
 * Maps a failed gRPC call the way dtm's SDK does (docs/protocol.md#what-clients-send): ABORTED is FAILURE (except the
 * message `ONGOING`), FAILED_PRECONDITION is ONGOING; the rest map to stable codes. The
 * coordinator's `dtx-code` trailer becomes `serverCode`.
 */
export function grpcErrorToDtx(what: string, error: GrpcErrorLike): DtxError {
  const raw = error.metadata?.get("dtx-code")[0];
  const details = { grpcCode: error.code, cause: error, ...(typeof raw === "string" ? { serverCode: raw } : {}) };
  const message = error.details || `${what}: gRPC status ${error.code}`;
  switch (error.code) {
    case GrpcStatus.ABORTED:
      return error.details === "ONGOING" ? new DtxOngoing("ONGOING", details) : new DtxFailure(message, details);
    case GrpcStatus.FAILED_PRECONDITION:
      return new DtxOngoing(message, details);
    case GrpcStatus.INVALID_ARGUMENT:
    case GrpcStatus.RESOURCE_EXHAUSTED:
    case GrpcStatus.OUT_OF_RANGE:
      return new DtxError("INVALID_ARGUMENT", `${what}: ${message}`, details);
    case GrpcStatus.NOT_FOUND:
      return new DtxError("NOT_FOUND", `${what}: ${message}`, details);
    case GrpcStatus.DEADLINE_EXCEEDED:
      return new DtxError("TIMEOUT", `${what}: ${message}`, details);
    case GrpcStatus.UNAVAILABLE:
      return new DtxError("UNAVAILABLE", `${what}: ${message}`, details);
    default:
      return new DtxError("GRPC_ERROR", `${what}: ${message}`, details);
  }
}

/** The parts of a grpc-js `ServiceError` the SDK reads. */
export interface GrpcErrorLike {
  readonly code: number;
  readonly details: string;
  readonly metadata?: { get(key: string): unknown[] };
}

const identity = (b: Buffer): Buffer => b;

/** One unary call's input. */
export interface UnaryCall {
  /** `host:port` */
  readonly target: string;
  /** `/package.Service/Method` */
  readonly path: string;
  /** The serialized request message. */
  readonly request: Uint8Array;
  /** Metadata (keys are lower-cased; `-bin` keys carry latin1 bytes). */
  readonly metadata: Record<string, string>;
  readonly timeoutMs: number;
}

/**
 * A cache of insecure gRPC channels, one per `host:port`, with raw-bytes unary calls. Owned by a
 * {@link DtxClient}; {@link close} closes every channel.
 */
export class GrpcChannels {
  readonly #clients = new Map<string, Client>();
  #closed = false;

  /** Sends raw request bytes and resolves with the raw response bytes; rejects with a {@link DtxError}. */
  async unary(call: UnaryCall): Promise<Buffer> {
    const grpc = await loadGrpc();
    if (this.#closed) throw new DtxError("UNAVAILABLE", "the DtxClient is closed");
    const client = this.#client(grpc, call.target);
    const metadata = new grpc.Metadata();
    for (const [name, value] of Object.entries(call.metadata)) {
      const key = name.toLowerCase();
      if (key.endsWith("-bin")) metadata.set(key, Buffer.from(value, "latin1"));
      else metadata.set(key, value);
    }
    const request = Buffer.from(call.request.buffer, call.request.byteOffset, call.request.byteLength);
    return new Promise<Buffer>((resolve, reject) => {
      client.makeUnaryRequest(call.path, identity, identity, request, metadata, { deadline: Date.now() + call.timeoutMs }, (error, reply) => {
        if (error) reject(grpcErrorToDtx(`${call.target}${call.path}`, error));
        else resolve(reply ?? Buffer.alloc(0));
      });
    });
  }

  /** Closes every channel; later calls fail with UNAVAILABLE. */
  close(): void {
    this.#closed = true;
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  #client(grpc: GrpcModule, target: string): Client {
    let client = this.#clients.get(target);
    if (!client) {
      client = new grpc.Client(target, grpc.credentials.createInsecure(), {
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 5_000,
      });
      this.#clients.set(target, client);
    }
    return client;
  }
}
