import { BranchIdGen } from "./branch-id.ts";
import type { BranchResponse } from "./branch-call.ts";
import { branchTimeoutMs, requestBranch } from "./branch-call.ts";
import type { DtxClient } from "./client.ts";
import { messageOf } from "./errors.ts";
import { newGid } from "./gid.ts";
import type { Payload, TransOptions } from "./types.ts";

/** An XA transaction being built inside {@link xaGlobalTransaction}. */
export class XaGlobal {
  readonly #ids = new BranchIdGen();

  /**
   * @param client the coordinator connection
   * @param gid the global id
   * @param options the transaction options (branch headers and request timeout apply to branch calls)
   */
  constructor(readonly client: DtxClient, readonly gid: string, readonly options: TransOptions = {}) {}

  /**
   * Calls one XA branch: POST `url` with `payload` and query `dtm`, `gid`, `branch_id`,
   * `trans_type=xa`, `op=action`, `phase2_url=<url>` (docs/protocol.md#xa). The participant runs its
   * local XA transaction (see {@link xaLocalTransaction}), registers the branch with `phase2_url`,
   * and prepares. The same URL later receives `op=commit` or `op=rollback`.
   */
  callBranch(payload: Payload, url: string): Promise<BranchResponse> {
    const branchId = this.#ids.next();
    return requestBranch(this.client, {
      url,
      method: "POST",
      payload,
      params: { dtm: this.client.server, gid: this.gid, branch_id: branchId, trans_type: "xa", op: "action", phase2_url: url },
      headers: this.options.branchHeaders ?? {},
      timeoutMs: branchTimeoutMs(this.client, this.options.requestTimeout),
    });
  }
}

/**
 * dtm's `XaGlobalTransaction`: prepares an XA transaction, runs `fn`, then submits (the
 * coordinator commits every branch) and resolves with `fn`'s result; when `fn` throws, aborts
 * with the error's message as rollback reason (the coordinator rolls every branch back) and
 * rethrows.
 *
 * ```ts
 * await xaGlobalTransaction(client, gid, async (xa) => {
 *   await xa.callBranch({ amount: 30 }, `${rm}/xa/TransOut`);
 *   await xa.callBranch({ amount: 30 }, `${rm}/xa/TransIn`);
 * });
 * ```
 *
 * With `options.waitResult` the final submit throws {@link DtxOngoing} while a commit is still
 * being retried (the transaction is unfinished and will still commit; not a failure).
 *
 * @param client the coordinator connection
 * @param gid the global id (undefined: a new local gid)
 * @param fn calls the branches
 * @param options transaction options
 */
export async function xaGlobalTransaction<T>(client: DtxClient, gid: string | undefined, fn: (xa: XaGlobal) => Promise<T>, options: TransOptions = {}): Promise<T> {
  const id = gid ?? newGid();
  const request = { gid: id, transType: "xa" as const, options };
  await client.transport.prepare(request);
  let result: T;
  try {
    result = await fn(new XaGlobal(client, id, options));
  } catch (err) {
    await client.transport.abort({ ...request, rollbackReason: messageOf(err).slice(0, 1024) }).catch(() => undefined);
    throw err;
  }
  await client.transport.submit(request);
  return result;
}
