/**
 * The one error a store throws for a fault of the store itself (it does not answer within the
 * timeout, the connection broke, it refuses connections, it is locked): the API answers it as
 * `503 STORE_UNAVAILABLE` with `Retry-After` (docs/store-outages.md). Any other error a store
 * throws is a bug and stays a 500.
 */
import { CoordinatorError } from "../core/errors.ts";

/**
 * The store did not answer in time or could not be reached. The outcome of a write that timed
 * out is unknown (it may commit later); every dtx write is idempotent per gid, so a retry is safe.
 */
export class StoreUnavailableError extends CoordinatorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("STORE_UNAVAILABLE", message, options);
    this.name = "StoreUnavailableError";
  }
}

/** True for a {@link StoreUnavailableError}. */
export function isStoreUnavailable(error: unknown): error is StoreUnavailableError {
  return error instanceof StoreUnavailableError;
}
