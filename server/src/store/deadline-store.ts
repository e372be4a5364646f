/**
 * Puts a deadline on every store call. The drivers have timeouts of their own (statement,
 * command, connect; see each store), but a call can also wait where no driver timer runs: for a
 * pooled connection, in a group-commit queue, behind a transaction's ROLLBACK on a hung
 * connection. This wrapper is the one guarantee the API relies on: every call settles within
 * `timeoutMs`, and a fault of the store comes out as a {@link StoreUnavailableError}
 * (docs/store-outages.md).
 *
 * A write that times out here may still commit later (its statement may already be on the
 * server); the caller is told the outcome is unknown, and dtx writes are idempotent per gid.
 */
import type { Store } from "./store.ts";
import { isStoreUnavailable, StoreUnavailableError } from "./store-errors.ts";
import { isStoreFault } from "./store-faults.ts";

type StoreCall = (...args: never[]) => Promise<unknown>;

/**
 * Store methods that talk to the database: every one but close, which waits for the others. A
 * record over the Store's keys, so a method added to the contract fails to compile until it is
 * listed here (and so gets its deadline).
 */
const CALLS: Record<Exclude<keyof Store, "close">, true> = {
  migrate: true, ping: true, findTrans: true, findBranches: true, scanTrans: true, saveNewTrans: true, appendBranches: true,
  updateTrans: true, renewLease: true, claimDue: true, resetCronTime: true, resetNextCronTime: true, findKV: true, scanKV: true,
  createKV: true, updateKV: true, deleteKV: true, deleteFinished: true,
};

/**
 * `store` with a deadline of `timeoutMs` on every call (migrate excepted: it may take longer on a
 * big table, and it runs before the coordinator serves anything). Other stores' methods (e.g.
 * batchStats) are left as they are.
 */
export function withDeadline<S extends Store>(store: S, timeoutMs: number): S {
  const wrapped = new Map<PropertyKey, StoreCall>();
  for (const name of Object.keys(CALLS) as (keyof typeof CALLS)[]) {
    const call = (store[name] as StoreCall).bind(store);
    wrapped.set(name, name === "migrate" ? translated(call) : bounded(call, name, timeoutMs));
  }
  return new Proxy(store, {
    get(target, property, receiver) {
      return wrapped.get(property) ?? Reflect.get(target, property, receiver);
    },
  });
}

/** Store faults become StoreUnavailableError; anything else (a bug) passes unchanged. */
function translate(error: unknown, name: string): unknown {
  if (isStoreUnavailable(error) || !isStoreFault(error)) return error;
  const why = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(`the store failed during ${name}: ${why}`, { cause: error });
}

function translated(call: StoreCall): StoreCall {
  return (...args) => call(...args).catch((error: unknown) => {
    throw translate(error, "migrate");
  });
}

function bounded(call: StoreCall, name: string, timeoutMs: number): StoreCall {
  return (...args) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new StoreUnavailableError(`the store did not answer ${name} within ${timeoutMs} ms`));
    }, timeoutMs);
    call(...args).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(translate(error, name));
      },
    );
  });
}
