import { CoordinatorError, failure, ongoing } from "../core/errors.ts";
import type { TimingConfig } from "../core/retry.ts";
import { baseInterval } from "../core/retry.ts";
import type { Branch, GlobalStatus, TransGlobal } from "../core/types.ts";
import { GLOBAL_STATUSES, isFinal, TRANS_TYPES } from "../core/types.ts";
import type { Clock } from "../cron/clock.ts";
import type { Logger } from "../logger.ts";
import type { NewBranch, NewTrans, ScanQuery, Store } from "../store/store.ts";
import { generateBranches } from "./branches.ts";
import { BranchRegistration } from "./branch-registration.ts";
import { msgDelay } from "../core/msg.ts";
import { checkMsgShape, generateMsgBranches } from "./msg-branches.ts";
import type { TopicService } from "./topic-service.ts";
import type { WorkflowProgress } from "./workflow-service.ts";
import { WorkflowService } from "./workflow-service.ts";
import type { Executor, PassResult } from "./executor.ts";
import type { RequestLimits, TransRequest } from "./request.ts";
import { asObject, parseGid, parseTransRequest, parseTransType } from "./request.ts";
import { newGid } from "./gid.ts";
import type { PassAdmission } from "./pass-admission.ts";

export interface TransServiceDeps {
  store: Store;
  executor: Executor;
  clock: Clock;
  timing: TimingConfig;
  limits: RequestLimits;
  logger: Logger;
  topics: TopicService;
  /** Caps passes in flight and the backlog left to the cron (docs/overload.md). */
  admission: PassAdmission;
}

export interface QueryResult {
  transaction: TransGlobal | null;
  branches: Branch[];
}

/**
 * The protocol-neutral use cases behind every API (HTTP, JSON-RPC and gRPC adapters only decode
 * requests and call these). Client mistakes throw {@link CoordinatorError} (4xx) before anything is
 * written; dtm's FAILURE / ONGOING answers throw WireResult (409 / 425).
 */
export class TransService {
  private readonly registration: BranchRegistration;
  private readonly workflows: WorkflowService;

  constructor(private readonly deps: TransServiceDeps) {
    this.registration = new BranchRegistration(deps.store, deps.clock, deps.limits);
    this.workflows = new WorkflowService(deps.store, deps.clock);
  }

  newGid(): string {
    return newGid();
  }

  async submit(body: unknown): Promise<void> {
    this.deps.admission.refuseIfOverloaded();
    const req = parseTransRequest(body, this.deps.limits);
    if (req.transType === "workflow") return this.workflows.submit(req);
    const now = this.deps.clock.now();
    const branches = await this.branchesFor(req, now);
    const fresh = this.newTrans(req, "submitted", now);
    const delay = req.transType === "msg" ? msgDelay(req.customData) : 0;
    // No pass slot: stored due now, for the cron alone to run, without a second write (docs/overload.md).
    const leftToCron = delay === 0 && !this.deps.admission.tryStart();
    if (delay > 0) fresh.nextCronTime = now + delay;
    else if (leftToCron) fresh.nextCronTime = now;
    const created = await this.deps.store.saveNewTrans(fresh, branches);
    if (created === "created") {
      if (delay > 0) return; // the cron delivers it once the delay has passed
      if (leftToCron) return this.leaveToCron({ ...fresh, id: 0 }, req.options.waitResult);
      const known = branches.map((b) => ({ ...b, id: 0 }));
      await this.processAfterRequest({ ...fresh, id: 0 }, req.options.waitResult, known);
      return;
    }
    const trans = await this.resubmit(req, delay);
    if (delay > 0 && trans.nextCronTime > now) return;
    await this.processAfterRequest(trans, req.options.waitResult || trans.options.waitResult);
  }

  /** prepare (msg, tcc, xa; saga is stored but never progresses, as in dtm). */
  async prepare(body: unknown): Promise<void> {
    this.deps.admission.refuseIfOverloaded();
    const req = parseTransRequest(body, this.deps.limits);
    if (req.transType === "workflow") throw new CoordinatorError("UNSUPPORTED_TRANS_TYPE", "use prepareWorkflow for a workflow");
    if (req.transType === "msg" && req.queryPrepared === "") {
      throw new CoordinatorError("INVALID_REQUEST", "query_prepared (the check-back URL) is required to prepare a msg");
    }
    const now = this.deps.clock.now();
    const branches = await this.branchesFor(req, now);
    if ((await this.deps.store.saveNewTrans(this.newTrans(req, "prepared", now), branches)) === "created") return;
    const stored = await this.deps.store.findTrans(req.gid);
    if (stored && stored.status !== "prepared") throw failure(`current status '${stored.status}', cannot prepare.`);
  }

  /** abort: a prepared msg fails at once; a prepared or aborting tcc/xa rolls back (PROTOCOL §3.2). */
  async abort(body: unknown): Promise<void> {
    const o = asObject(body);
    const gid = parseGid(o["gid"]);
    const requestType = parseTransType(o["trans_type"]);
    const reason = typeof o["rollback_reason"] === "string" ? o["rollback_reason"].slice(0, 1024) : "";
    const waitResult = o["wait_result"] === true;
    for (let attempt = 0; attempt < 3; attempt++) {
      const stored = await this.mustFind(gid);
      const now = this.deps.clock.now();
      const cannot = failure(`trans type: '${stored.transType}' current status '${stored.status}', cannot abort.`);
      if (stored.transType === "msg") {
        if (stored.status !== "prepared") throw cannot;
        const patch = { status: "failed" as const, updateTime: now, rollbackTime: now, ...(reason ? { rollbackReason: reason } : {}) };
        if (await this.deps.store.updateTrans(gid, "prepared", patch, [])) return;
        continue;
      }
      const rollsBack = (t: string): boolean => t === "tcc" || t === "xa";
      if (!rollsBack(requestType) || !rollsBack(stored.transType) || (stored.status !== "prepared" && stored.status !== "aborting")) throw cannot;
      const patch = { status: "aborting" as const, updateTime: now, ...(reason ? { rollbackReason: reason } : {}) };
      if (await this.deps.store.updateTrans(gid, stored.status, patch, [])) {
        const aborting: TransGlobal = { ...stored, status: "aborting", updateTime: now, rollbackReason: reason || stored.rollbackReason };
        await this.processAfterRequest(aborting, waitResult || stored.options.waitResult, undefined, false);
        return;
      }
    }
    throw new CoordinatorError("INTERNAL", `gid ${gid} changed concurrently while being aborted; retry the request`);
  }

  async registerBranch(body: unknown): Promise<void> {
    this.deps.admission.refuseIfOverloaded();
    return this.registration.register(body);
  }

  async prepareWorkflow(body: unknown): Promise<WorkflowProgress> {
    this.deps.admission.refuseIfOverloaded();
    const req = parseTransRequest(body, this.deps.limits);
    return this.workflows.prepare(req, this.newTrans(req, "prepared", this.deps.clock.now()));
  }

  private async branchesFor(req: TransRequest, now: number): Promise<NewBranch[]> {
    if (req.transType === "msg") {
      checkMsgShape(req, this.deps.limits);
      return generateMsgBranches(req, now, this.deps.topics, this.deps.limits);
    }
    return generateBranches(req, now);
  }

  /** A submit for a gid that exists: prepared -> submitted; submitted continues from the stored branches (D2). */
  private async resubmit(req: TransRequest, delay: number): Promise<TransGlobal> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const stored = await this.deps.store.findTrans(req.gid);
      if (!stored) break;
      if (stored.status === "submitted") return stored;
      if (stored.status !== "prepared") throw failure(`current status '${stored.status}', cannot sumbmit.`);
      const now = this.deps.clock.now();
      const nextCronTime = delay > 0 ? now + delay : stored.nextCronTime;
      if (await this.deps.store.updateTrans(req.gid, "prepared", { status: "submitted", updateTime: now, nextCronTime }, [])) {
        return { ...stored, status: "submitted", updateTime: now, nextCronTime };
      }
    }
    throw new CoordinatorError("INTERNAL", `gid ${req.gid} changed concurrently while being submitted; retry the request`);
  }

  /**
   * Runs a pass now. With wait_result it waits and reports the outcome (PROTOCOL §9.7): a saga
   * that rolled back is a 409; a trans still unfinished is 409 for a saga and for a msg waiting on
   * ONGOING (as dtm), and 425 ONGOING when branches answered errors or a tcc/xa is unfinished.
   */
  private async processAfterRequest(trans: TransGlobal, waitResult: boolean, branches?: Branch[], expectSuccess = true): Promise<void> {
    if (!this.deps.admission.tryStart()) return this.leaveToCron(trans, waitResult);
    if (!waitResult) {
      this.deps.executor.process(trans, branches).catch((error: unknown) => {
        this.deps.logger.error({ gid: trans.gid, err: error }, "processing after request failed; the cron will retry");
      });
      return;
    }
    const result: PassResult = await this.deps.executor.process(trans, branches);
    const status = result.trans.status;
    if (status === "succeed" || (!expectSuccess && status === "failed")) return;
    // dtm answers a msg whose branch is merely ONGOING like an unfinished saga (409); a branch
    // error is still being retried, which 425 ONGOING says without dtm's 500.
    const msgOngoing = trans.transType === "msg" && result.lastError === undefined;
    if (status === "failed" || trans.transType === "saga" || msgOngoing) {
      throw failure(result.trans.rollbackReason ? result.trans.rollbackReason : "wait result not return success:");
    }
    if (!expectSuccess && result.lastError === undefined && !result.ongoing) return;
    throw ongoing(`transaction ${trans.gid} is ${status}; still in progress${result.lastError ? `: ${result.lastError}` : ""}`);
  }

  /**
   * Past the pass cap the trans is not run here: it is made due now (unless it already is) and the
   * recovery loop runs it when a slot frees. With wait_result the client learns it is unfinished
   * (425 ONGOING), which is the truth; see docs/overload.md.
   */
  private async leaveToCron(trans: TransGlobal, waitResult: boolean): Promise<void> {
    const now = this.deps.clock.now();
    if (trans.nextCronTime > now) await this.deps.store.resetNextCronTime(trans.gid, now);
    this.deps.admission.deferred();
    if (waitResult) throw ongoing(`transaction ${trans.gid} is ${trans.status}; the coordinator is busy and the recovery loop will run it shortly`);
  }

  async forceStop(body: unknown): Promise<void> {
    const gid = parseGid(asObject(body)["gid"]);
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await this.mustFind(gid);
      if (isFinal(stored.status)) throw failure(`global transaction force stop error. status: ${stored.status}. error:`);
      const now = this.deps.clock.now();
      const won = await this.deps.store.updateTrans(gid, stored.status, { status: "failed", updateTime: now, rollbackTime: now, rollbackReason: stored.rollbackReason || "force stopped" }, []);
      if (won) return;
    }
    throw new CoordinatorError("INTERNAL", `gid ${gid} kept changing while being force-stopped; retry the request`);
  }

  async resetNextCronTime(body: unknown): Promise<void> {
    const gid = parseGid(asObject(body)["gid"]);
    if (!(await this.deps.store.resetNextCronTime(gid, this.deps.clock.now()))) {
      throw new CoordinatorError("TRANS_NOT_FOUND", `no transaction with gid ${gid}`);
    }
  }

  async resetCronTime(timeoutSeconds: number | undefined, limit: number | undefined): Promise<{ count: number; hasRemaining: boolean }> {
    const now = this.deps.clock.now();
    const timeoutMs = timeoutSeconds === undefined ? 3 * this.deps.timing.timeoutToFail : timeoutSeconds * 1000;
    return this.deps.store.resetCronTime(now + timeoutMs, now, limit ?? 100);
  }

  async query(gidParam: unknown): Promise<QueryResult> {
    const gid = parseGid(gidParam);
    const [transaction, branches] = await Promise.all([this.deps.store.findTrans(gid), this.deps.store.findBranches(gid)]);
    return { transaction, branches };
  }

  async all(params: Record<string, string | undefined>): Promise<{ transactions: TransGlobal[] | null; nextPosition: string }> {
    if (params["gid"]) {
      const trans = await this.deps.store.findTrans(parseGid(params["gid"]));
      return { transactions: trans ? [trans] : null, nextPosition: params["position"] ?? "" };
    }
    return this.deps.store.scanTrans(parseScanQuery(params));
  }

  private async mustFind(gid: string): Promise<TransGlobal> {
    const stored = await this.deps.store.findTrans(gid);
    if (!stored) throw new CoordinatorError("TRANS_NOT_FOUND", `no transaction with gid ${gid}`);
    return stored;
  }

  private newTrans(req: TransRequest, status: GlobalStatus, now: number): NewTrans {
    const base = baseInterval(req, this.deps.timing);
    return {
      gid: req.gid,
      transType: req.transType,
      status,
      protocol: req.protocol,
      queryPrepared: req.queryPrepared,
      customData: req.customData,
      options: req.options,
      extData: "",
      createTime: now,
      updateTime: now,
      finishTime: null,
      rollbackTime: null,
      rollbackReason: req.rollbackReason,
      result: "",
      nextCronInterval: base,
      nextCronTime: now + base,
      owner: "",
    };
  }
}

function parseScanQuery(params: Record<string, string | undefined>): ScanQuery {
  const int = (key: string, fallback: number | undefined, max: number): number | undefined => {
    const raw = params[key];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > max) throw new CoordinatorError("INVALID_REQUEST", `${key} must be a whole number between 0 and ${max}`);
    return n;
  };
  const q: ScanQuery = { position: String(int("position", undefined, Number.MAX_SAFE_INTEGER) ?? ""), limit: int("limit", 100, 1000) ?? 100 };
  const status = params["status"];
  if (status) {
    if (!(GLOBAL_STATUSES as readonly string[]).includes(status)) throw new CoordinatorError("INVALID_REQUEST", `status must be one of ${GLOBAL_STATUSES.join(", ")}`);
    q.status = status as GlobalStatus;
  }
  const transType = params["transType"];
  if (transType) {
    if (!(TRANS_TYPES as readonly string[]).includes(transType)) throw new CoordinatorError("INVALID_TRANS_TYPE", `transType must be one of ${TRANS_TYPES.join(", ")}`);
    q.transType = transType as ScanQuery["transType"] & string;
  }
  const start = int("createTimeStart", undefined, Number.MAX_SAFE_INTEGER);
  const end = int("createTimeEnd", undefined, Number.MAX_SAFE_INTEGER);
  // dtm truncates the epoch-millisecond bounds to whole seconds.
  if (start !== undefined) q.createTimeStart = Math.floor(start / 1000) * 1000;
  if (end !== undefined) q.createTimeEnd = Math.floor(end / 1000) * 1000;
  return q;
}
