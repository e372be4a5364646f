import { CoordinatorError, failure } from "../core/errors.ts";
import type { Branch, TransGlobal } from "../core/types.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../logger.ts";
import type { NewTrans, Store } from "../store/store.ts";
import type { TransRequest } from "./request.ts";
import { logStatusChange } from "./status-log.ts";

export interface WorkflowProgress {
  transaction: TransGlobal;
  progresses: Branch[];
}

/**
 * Workflow, server side (docs/protocol.md#workflow): the SDK prepares, records each branch's result with
 * registerBranch, then submits the final status. The coordinator only stores, and resumes a
 * prepared workflow by calling the application back from the cron.
 */
export class WorkflowService {
  constructor(private readonly store: Store, private readonly clock: Clock, private readonly logger: Logger) {}

  /** Creates the workflow, or returns the stored one with its recorded progress. */
  async prepare(req: TransRequest, fresh: NewTrans): Promise<WorkflowProgress> {
    if (req.transType !== "workflow") throw new CoordinatorError("UNSUPPORTED_TRANS_TYPE", "prepareWorkflow takes trans_type workflow");
    if ((await this.store.saveNewTrans(fresh, [])) === "created") {
      logStatusChange(this.logger, { gid: fresh.gid, transType: fresh.transType, from: null, to: fresh.status, cause: "create" });
      const stored = await this.store.findTrans(req.gid);
      return { transaction: stored ?? { ...fresh, id: 0 }, progresses: [] };
    }
    const [transaction, progresses] = await Promise.all([this.store.findTrans(req.gid), this.store.findBranches(req.gid)]);
    if (!transaction) throw new CoordinatorError("INTERNAL", `workflow ${req.gid} vanished while being prepared`);
    return { transaction, progresses };
  }

  /** Records the workflow's outcome: `req_extra.status` is succeed or failed. */
  async submit(req: TransRequest): Promise<void> {
    const status = req.reqExtra["status"];
    if (status !== "succeed" && status !== "failed") {
      throw new CoordinatorError("INVALID_REQUEST", "a workflow submit needs req_extra.status succeed or failed");
    }
    const existing = await this.store.findTrans(req.gid);
    if (!existing) throw new CoordinatorError("TRANS_NOT_FOUND", `no transaction with gid ${req.gid}`);
    if (existing.transType !== "workflow") {
      throw new CoordinatorError("UNSUPPORTED_TRANS_TYPE", `gid ${req.gid} is a ${existing.transType} transaction, not a workflow`);
    }
    const now = this.clock.now();
    const reason = req.reqExtra["rollback_reason"] ?? "";
    const result = req.reqExtra["result"] ?? "";
    const won = await this.store.updateTrans(req.gid, "prepared", {
      status,
      updateTime: now,
      ...(status === "succeed" ? { finishTime: now } : { rollbackTime: now }),
      ...(reason ? { rollbackReason: reason.slice(0, 1024) } : {}),
      ...(result ? { result } : {}),
    }, []);
    if (won) {
      logStatusChange(this.logger, { gid: req.gid, transType: "workflow", from: "prepared", to: status, cause: "workflow-submit" });
      return;
    }
    const stored = await this.store.findTrans(req.gid);
    if (!stored) throw new CoordinatorError("TRANS_NOT_FOUND", `no transaction with gid ${req.gid}`);
    if (stored.status !== status) throw failure(`workflow ${req.gid} is ${stored.status}, cannot become ${status}.`);
  }
}
