import { dtxErrorCode, isFailure, isOngoing, messageOf } from "../errors.ts";
import { GrpcStatus } from "../transport/grpc-runtime.ts";
import type { MetadataLike } from "./common.ts";
import type { SignatureOption } from "./signature.ts";
import { toVerifier } from "./signature.ts";

/** The part of a grpc-js `ServerUnaryCall` the helper passes on. */
export interface GrpcUnaryCallLike<Req> {
  /** The deserialized request message. */
  readonly request: Req;
  /** The call's metadata (`dtm-*` keys carry the branch identity). */
  readonly metadata: MetadataLike;
  /** The method's path `/package.Service/Method` (grpc-js has it); needed to verify a signature. */
  getPath?(): string;
}

/** Options of {@link grpcHandler}. */
export interface GrpcHandlerOptions<Req, Res> {
  /** The reply when the handler returns nothing (default `{}`; `() => Buffer.alloc(0)` for raw-bytes services). */
  readonly empty?: () => Res;
  /**
   * Verify the coordinator's branch signature before the handler runs (refused: UNAUTHENTICATED).
   * The signature covers the request's bytes: a service with identity deserializers gives them as
   * the request; otherwise pass {@link requestBytes}.
   */
  readonly signature?: SignatureOption;
  /**
   * The request message's bytes as received, for the signature, when the request is decoded (e.g.
   * the method's `requestSerialize`, which gives the same bytes only when the encoder writes what
   * the sender wrote: no unknown fields, same field order). Default: the request itself when it is
   * a Buffer / Uint8Array.
   */
  readonly requestBytes?: (request: Req) => Uint8Array;
}

/** A grpc-js status error, as a unary callback takes it. */
export interface GrpcStatusError {
  /** The gRPC status code. */
  readonly code: number;
  /** The status message sent to the caller. */
  readonly details: string;
  /** Same as `details`. */
  readonly message: string;
}

/** A grpc-js `sendUnaryData` callback. */
export type GrpcUnaryCallback<Res> = (error: GrpcStatusError | null, value?: Res) => void;

/** The gRPC status for a handler's thrown error: FAILURE -> ABORTED, ONGOING -> FAILED_PRECONDITION, UNAUTHENTICATED -> UNAUTHENTICATED, else UNKNOWN. */
export function grpcStatusFor(error: unknown): GrpcStatusError {
  const message = messageOf(error);
  if (isFailure(error)) return { code: GrpcStatus.ABORTED, details: message, message };
  if (isOngoing(error)) return { code: GrpcStatus.FAILED_PRECONDITION, details: message, message };
  if (dtxErrorCode(error) === "UNAUTHENTICATED") return { code: GrpcStatus.UNAUTHENTICATED, details: message, message };
  const defused = message.replace(/FAILURE|ONGOING/g, (w) => w.toLowerCase());
  return { code: GrpcStatus.UNKNOWN, details: defused, message: defused };
}

/**
 * Wraps a gRPC participant method for grpc-js (`server.addService(def, { TransOut: grpcHandler(...) })`):
 * the handler's value is the reply (`empty()` when it returns nothing: `{}` by default, which
 * suits proto-serialized `google.protobuf.Empty`; pass `() => Buffer.alloc(0)` for raw-bytes
 * services); a thrown {@link DtxFailure} is ABORTED, {@link DtxOngoing} FAILED_PRECONDITION,
 * anything else UNKNOWN. With `signature`, a call whose branch signature does not verify is
 * answered UNAUTHENTICATED without calling the handler.
 */
export function grpcHandler<Req, Res>(
  fn: (call: GrpcUnaryCallLike<Req>) => Promise<Res | undefined | void> | Res | undefined | void,
  emptyOrOptions: (() => Res) | GrpcHandlerOptions<Req, Res> = {},
): (call: GrpcUnaryCallLike<Req>, callback: GrpcUnaryCallback<Res>) => void {
  const options: GrpcHandlerOptions<Req, Res> = typeof emptyOrOptions === "function" ? { empty: emptyOrOptions } : emptyOrOptions;
  const empty = options.empty ?? (() => ({}) as Res);
  const verifier = options.signature === undefined ? undefined : toVerifier(options.signature);
  return (call, callback) => {
    Promise.resolve()
      .then(() => {
        if (verifier) verifier.verifyGrpc({ path: grpcPathOf(call), metadata: call.metadata, message: requestBytesOf(call.request, options.requestBytes) });
        return fn(call);
      })
      .then(
        (value) => callback(null, value === undefined ? empty() : (value as Res)),
        (error: unknown) => callback(grpcStatusFor(error)),
      );
  };
}

function grpcPathOf(call: { getPath?(): string }): string {
  if (typeof call.getPath !== "function") throw new Error("verifying a branch signature needs the call's path (grpc-js ServerUnaryCall.getPath)");
  return call.getPath();
}

/** The bytes a signature covers; a decoded request without `requestBytes` is a setup mistake (UNKNOWN, retried). */
export function requestBytesOf<Req>(request: Req, requestBytes?: (request: Req) => Uint8Array): Uint8Array {
  if (requestBytes) return requestBytes(request);
  if (request instanceof Uint8Array) return request;
  throw new Error("verifying a branch signature needs the request's bytes: use identity deserializers or pass requestBytes");
}
