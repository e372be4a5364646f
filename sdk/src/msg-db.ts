import type { BranchInfo } from "./types.ts";

/**
 * The hook {@link Msg.doAndSubmitDB} uses to run the business inside a local transaction guarded
 * by the msg barrier (docs/protocol.md#msg and docs/protocol.md#msg-check-back). The barrier module's database adapters implement it;
 * any object with this method works.
 */
export interface MsgBarrierDb<Tx = unknown> {
  /**
   * Opens a local transaction, inserts the msg barrier row `(msg, gid, "00", "msg", "01")` (throw
   * a `DUPLICATED` error when it exists), runs `busi` with the transaction, and commits; rolls
   * back and rethrows when `busi` throws.
   *
   * @param barrier the msg barrier identity: `{ transType: "msg", gid, branchId: "00", op: "msg" }`
   * @param busi the business, given the open transaction
   */
  callMsgBarrier(barrier: BranchInfo, busi: (tx: Tx) => Promise<void>): Promise<void>;
}

/** The barrier identity of a msg's local transaction and check-back (branch `00`, op `msg`). */
export function msgBarrierInfo(gid: string): BranchInfo {
  return { transType: "msg", gid, branchId: "00", op: "msg" };
}
