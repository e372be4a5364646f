import { Metadata, status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { clip, wellFormed } from "../../core/echo.ts";
import { CoordinatorError, WireResult } from "../../core/errors.ts";
import type { Logger } from "../../logger.ts";
import { OVERLOADED_RETRY_AFTER_SECONDS } from "../../service/pass-admission.ts";
import type { AuthErrorCode } from "../auth.ts";
import { AUTH_ERROR_CODES } from "../auth.ts";

/** Trailing metadata key carrying dtx's stable error code (`INVALID_GID`, `FAILURE`, ...). */
export const ERROR_CODE_KEY = "dtx-code";

function serviceError(code: status, text: string, stableCode: string): Partial<ServiceError> {
  // grpc-js percent-encodes the status message with encodeURI, which throws on a lone surrogate
  // (one can come from the client's own input, quoted by a parse error) and left the call unanswered.
  const details = wellFormed(text);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, stableCode);
  return { code, details, message: details, metadata };
}

/**
 * Maps what a service call threw to a gRPC status (docs/protocol.md#grpc-api and docs/deviations.md D1): dtm's FAILURE is ABORTED
 * and ONGOING is FAILED_PRECONDITION (what dtm's clients look for); a CoordinatorError carries its
 * own code (INVALID_ARGUMENT, RESOURCE_EXHAUSTED, NOT_FOUND, ...). Nothing a client sends is
 * answered INTERNAL: an unexpected fault is UNKNOWN, which is also what dtm's clients see for a
 * plain server error, and is logged.
 */
export function toGrpcError(error: unknown, logger: Logger, method: string): Partial<ServiceError> {
  if (error instanceof WireResult) {
    return serviceError(error.result === "FAILURE" ? status.ABORTED : status.FAILED_PRECONDITION, error.message, error.result);
  }
  if (error instanceof CoordinatorError) {
    // STORE_UNAVAILABLE is UNAVAILABLE (14), which gRPC clients retry; an outage fails every call, so a warn line each.
    if (error.code === "STORE_UNAVAILABLE") logger.warn({ reason: error.message, method }, "gRPC request failed: the store is unavailable");
    // OVERLOADED is an expected answer under load, not a fault: logging each one would add to the load.
    else if (error.httpStatus >= 500 && error.code !== "OVERLOADED") logger.error({ err: error, method }, "gRPC request failed");
    const code = error.grpcCode === status.INTERNAL ? status.UNKNOWN : (error.grpcCode as status);
    const reply = serviceError(code, error.message, error.code);
    // gRPC's own Retry-After: clients with a retry policy wait this long before trying again.
    if (error.code === "OVERLOADED") reply.metadata?.set("grpc-retry-pushback-ms", String(OVERLOADED_RETRY_AFTER_SECONDS * 1000));
    return reply;
  }
  logger.error({ err: error, method }, "unexpected error while handling a gRPC request");
  return serviceError(status.UNKNOWN, "internal error; see the coordinator log", "INTERNAL");
}

/** A request message that is not valid protobuf for its RPC: the client's mistake. */
export function undecodable(path: string, error: unknown): Partial<ServiceError> {
  const why = clip(error instanceof Error ? error.message : "undecodable");
  return serviceError(status.INVALID_ARGUMENT, `cannot decode the request of ${path}: ${why}`, "INVALID_REQUEST");
}

/** A call refused by authentication: UNAUTHENTICATED or PERMISSION_DENIED, with the stable code in `dtx-code`. */
export function authRefused(code: AuthErrorCode, message: string): Partial<ServiceError> {
  return serviceError(AUTH_ERROR_CODES[code].grpcCode as status, message, code);
}
