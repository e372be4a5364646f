import type { NewBranch } from "../store/store.ts";
import type { TransRequest } from "./request.ts";

function branchIdOf(index: number): string {
  return String(index + 1).padStart(2, "0");
}

function branch(gid: string, branchId: string, op: string, url: string, binData: Uint8Array, now: number): NewBranch {
  return { gid, branchId, op, url, binData, status: "prepared", createTime: now, updateTime: now, finishTime: null };
}

/**
 * The branches a saga or msg request generates (docs/protocol.md#saga and docs/protocol.md#msg): for saga step i, rows
 * (compensate, action) with branch_id `%02d` of i+1; for msg, one action row per step.
 * TCC, XA and workflow register their branches later.
 */
export function generateBranches(req: TransRequest, now: number): NewBranch[] {
  const out: NewBranch[] = [];
  const empty = new Uint8Array(0);
  req.steps.forEach((step, i) => {
    const id = branchIdOf(i);
    const payload = req.payloads[i] ?? empty;
    if (req.transType === "saga") {
      out.push(branch(req.gid, id, "compensate", step["compensate"] ?? "", payload, now));
      out.push(branch(req.gid, id, "action", step["action"] ?? "", payload, now));
    } else if (req.transType === "msg") {
      out.push(branch(req.gid, id, "action", step["action"] ?? "", payload, now));
    }
  });
  return out;
}
