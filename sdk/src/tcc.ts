import { BranchIdGen } from "./branch-id.ts";
import type { BranchResponse } from "./branch-call.ts";
import { branchTimeoutMs, requestBranch } from "./branch-call.ts";
import type { DtxClient } from "./client.ts";
import { clientForServer } from "./client.ts";
import { messageOf } from "./errors.ts";
import { newGid } from "./gid.ts";
import { payloadBytes } from "./payload.ts";
import type { BranchRequestInfo, Payload, TransOptions } from "./types.ts";

/**
 * A TCC transaction being built inside {@link tccGlobalTransaction} (or nested in a Try handler,
 * see {@link tccFromBranch}). Each {@link callBranch} registers a branch and calls its Try.
 */
export class Tcc {
  readonly #ids: BranchIdGen;

  /**
   * @param client the coordinator connection
   * @param gid the global id
   * @param parentBranchId "" at the top level; the Try's branch id when nested (ids become `<parent>01`, ...)
   * @param options the transaction options (branch headers and request timeout apply to Try calls)
   */
  constructor(readonly client: DtxClient, readonly gid: string, parentBranchId = "", readonly options: TransOptions = {}) {
    this.#ids = new BranchIdGen(parentBranchId);
  }

  /**
   * Registers a branch (Confirm and Cancel URLs, `payload` as their body) and calls its Try:
   * POST `tryUrl` with query `dtm`, `gid`, `trans_type=tcc`, `branch_id`, `op=try` and the branch
   * headers. Resolves with the Try's answer; throws {@link DtxFailure} when the Try answered
   * FAILURE, {@link DtxOngoing} for ONGOING, another {@link DtxError} otherwise.
   */
  async callBranch(payload: Payload, tryUrl: string, confirmUrl: string, cancelUrl: string): Promise<BranchResponse> {
    const branchId = this.#ids.next();
    await this.client.transport.registerBranch({
      gid: this.gid,
      transType: "tcc",
      branchId,
      data: payloadBytes(payload),
      extra: { confirm: confirmUrl, cancel: cancelUrl },
    });
    return requestBranch(this.client, {
      url: tryUrl,
      method: "POST",
      payload,
      params: { dtm: this.client.server, gid: this.gid, branch_id: branchId, trans_type: "tcc", op: "try" },
      headers: this.options.branchHeaders ?? {},
      timeoutMs: branchTimeoutMs(this.client, this.options.requestTimeout),
    });
  }
}

/**
 * dtm's `TccGlobalTransaction` (docs/protocol.md#tcc and docs/protocol.md#what-clients-send): prepares a TCC, runs `fn`, then submits
 * (the coordinator confirms every branch) and resolves with `fn`'s result. When `fn` throws (a
 * Try answered FAILURE, or anything else), aborts with `rollback_reason` = the error's message
 * (the coordinator cancels every registered branch) and rethrows the error.
 *
 * ```ts
 * await tccGlobalTransaction(client, gid, async (tcc) => {
 *   await tcc.callBranch({ amount: 30 }, `${busi}/TransOutTry`, `${busi}/TransOutConfirm`, `${busi}/TransOutCancel`);
 *   await tcc.callBranch({ amount: 30 }, `${busi}/TransInTry`, `${busi}/TransInConfirm`, `${busi}/TransInCancel`);
 * });
 * ```
 *
 * With `options.waitResult` the final submit throws {@link DtxOngoing} while a Confirm is still
 * being retried (the transaction is unfinished and will still commit; not a failure).
 *
 * @param client the coordinator connection
 * @param gid the global id (undefined: a new local gid)
 * @param fn calls the branches
 * @param options transaction options
 */
export async function tccGlobalTransaction<T>(client: DtxClient, gid: string | undefined, fn: (tcc: Tcc) => Promise<T>, options: TransOptions = {}): Promise<T> {
  const id = gid ?? newGid();
  const request = { gid: id, transType: "tcc" as const, options };
  await client.transport.prepare(request);
  let result: T;
  try {
    result = await fn(new Tcc(client, id, "", options));
  } catch (err) {
    await client.transport.abort({ ...request, rollbackReason: messageOf(err).slice(0, 1024) }).catch(() => undefined);
    throw err;
  }
  await client.transport.submit(request);
  return result;
}

/**
 * A {@link Tcc} nested in a Try handler (Go `TccFromQuery`): its branches belong to the same
 * global transaction and are numbered under the Try's branch id (`01` -> `0101`, `0102`).
 *
 * @param info the Try request's branch info (see `branchInfoFromQuery`); `dtm` names the coordinator
 * @param client the coordinator connection (default: one for `info.dtm`)
 */
export function tccFromBranch(info: BranchRequestInfo, client?: DtxClient): Tcc {
  return new Tcc(client ?? clientForServer(info.dtm), info.gid, info.branchId);
}
