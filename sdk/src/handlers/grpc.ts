import { isFailure, isOngoing, messageOf } from "../errors.ts";
import { GrpcStatus } from "../transport/grpc-runtime.ts";
import type { MetadataLike } from "./common.ts";

/** The part of a grpc-js `ServerUnaryCall` the helper passes on. */
export interface GrpcUnaryCallLike<Req> {
  /** The deserialized request message. */
  readonly request: Req;
  /** The call's metadata (`dtm-*` keys carry the branch identity). */
  readonly metadata: MetadataLike;
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

/** The gRPC status for a handler's thrown error: FAILURE -> ABORTED, ONGOING -> FAILED_PRECONDITION, else UNKNOWN. */
export function grpcStatusFor(error: unknown): GrpcStatusError {
  const message = messageOf(error);
  if (isFailure(error)) return { code: GrpcStatus.ABORTED, details: message, message };
  if (isOngoing(error)) return { code: GrpcStatus.FAILED_PRECONDITION, details: message, message };
  const defused = message.replace(/FAILURE|ONGOING/g, (w) => w.toLowerCase());
  return { code: GrpcStatus.UNKNOWN, details: defused, message: defused };
}

/**
 * Wraps a gRPC participant method for grpc-js (`server.addService(def, { TransOut: grpcHandler(...) })`):
 * the handler's value is the reply (`empty()` when it returns nothing: `{}` by default, which
 * suits proto-serialized `google.protobuf.Empty`; pass `() => Buffer.alloc(0)` for raw-bytes
 * services); a thrown {@link DtxFailure} is ABORTED, {@link DtxOngoing} FAILED_PRECONDITION,
 * anything else UNKNOWN.
 */
export function grpcHandler<Req, Res>(
  fn: (call: GrpcUnaryCallLike<Req>) => Promise<Res | undefined | void> | Res | undefined | void,
  empty: () => Res = () => ({}) as Res,
): (call: GrpcUnaryCallLike<Req>, callback: GrpcUnaryCallback<Res>) => void {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call))
      .then(
        (value) => callback(null, value === undefined ? empty() : (value as Res)),
        (error: unknown) => callback(grpcStatusFor(error)),
      );
  };
}
