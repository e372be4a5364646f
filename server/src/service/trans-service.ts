import { CoordinatorError, failure, ongoing } from "../core/errors.ts";
import type { TimingConfig } from "../core/retry.ts";
import { baseInterval } from "../core/retry.ts";
import type { Branch, GlobalStatus, TransGlobal } from "../core/types.ts";
import { GLOBAL_STATUSES, isFinal, TRANS_TYPES } from "../core/types.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../logger.ts";
import type { NewBranch, NewTrans, ScanQuery, Store } from "../store/store.ts";
import { releasedOwner, tokenDefersResults } from "./claim.ts";
import { generateBranches } from "./branches.ts";
import { BranchRegistration } from "./branch-registration.ts";
import { msgDelay } from "../core/msg.ts";
import { checkMsgShape, generateMsgBranches } from "./msg-branches.ts";
import type { TopicService } from "./topic-service.ts";
import type { WorkflowProgress } from "./workflow-service.ts";
import { WorkflowService } from "./workflow-service.ts";
import type { Executor, PassResult } from "./executor.ts";
import type { WaitRequest } from "../core/wait-result.ts";
import { waitVerdict } from "../core/wait-result.ts";
import type { RequestLimits, TransRequest } from "./request.ts";
import { asObject, parseGid, parseTransRequest, parseTransType } from "./request.ts";
import { newGid } from "../core/gid.ts";
import type { PassAdmission } from "./pass-admission.ts";
import { logStatusChange } from "./status-log.ts";
import type { StatusChange } from "./status-log.ts";

export interface TransServiceDeps {
  store: Store;
  executor: Executor;
  /** A fresh fencing token for each claim a request takes (docs/fencing.md). */
  newToken: () => string;
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
    this.workflows = new WorkflowService(deps.store, deps.clock, deps.logger);
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
    // A pass that runs now owns the row from its creation: the first lease is next_cron_time.
    else fresh.owner = this.deps.newToken();
    const created = await this.deps.store.saveNewTrans(fresh, branches);
    if (created === "created") {
      this.logChange({ gid: fresh.gid, transType: fresh.transType, from: null, to: fresh.status, cause: "create" });
      // The cron delivers a delayed msg once the delay has passed; until then it is unfinished.
      if (delay > 0) return this.reportDelayed({ ...fresh, id: 0 }, req.options.waitResult);
      if (leftToCron) return this.leaveToCron({ ...fresh, id: 0 }, req.options.waitResult, "");
      const known = branches.map((b) => ({ ...b, id: 0 }));
      await this.processAfterRequest({ ...fresh, id: 0 }, req.options.waitResult, known);
      return;
    }
    const { trans, claimed, previousOwner } = await this.resubmit(req, delay);
    const waitResult = req.options.waitResult || trans.options.waitResult;
    if (delay > 0 && trans.nextCronTime > now) return this.reportDelayed(trans, waitResult);
    await this.processAfterRequest(trans, waitResult, undefined, "submit", claimed, previousOwner);
  }

  /** A delayed msg is stored, not delivered: a wait_result submit can only say it is unfinished (docs/deviations.md D11). */
  private reportDelayed(trans: TransGlobal, waitResult: boolean): void {
    if (waitResult) this.reportWaited(trans, "submit");
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
    const fresh = this.newTrans(req, "prepared", now);
    if ((await this.deps.store.saveNewTrans(fresh, branches)) === "created") {
      this.logChange({ gid: fresh.gid, transType: fresh.transType, from: null, to: "prepared", cause: "create" });
      return;
    }
    const stored = await this.deps.store.findTrans(req.gid);
    if (stored && stored.status !== "prepared") throw failure(`current status '${stored.status}', cannot prepare.`);
  }

  /** abort: a prepared msg fails at once; a prepared or aborting tcc/xa rolls back (docs/protocol.md#http-routes). */
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
        const patch = { status: "failed" as const, updateTime: now, rollbackTime: now, owner: "", ...(reason ? { rollbackReason: reason } : {}) };
        if (await this.deps.store.updateTrans(gid, { status: "prepared", owner: stored.owner }, patch, [])) {
          this.logChange({ gid, transType: stored.transType, from: "prepared", to: "failed", cause: "abort" });
          return;
        }
        continue;
      }
      const rollsBack = (t: string): boolean => t === "tcc" || t === "xa";
      if (!rollsBack(requestType) || !rollsBack(stored.transType) || (stored.status !== "prepared" && stored.status !== "aborting")) throw cannot;
      const rollbackReason = reason ? { rollbackReason: reason } : {};
      const waits = waitResult || stored.options.waitResult;
      if (stored.status === "aborting" && this.notDue(stored, now)) {
        // Already rolling back, under another claim or in a failed pass's backoff: that pass or the cron finishes the job.
        await this.processAfterRequest(stored, waits, undefined, "abort", false);
        return;
      }
      const claim = this.newClaim(stored, now);
      if (await this.deps.store.updateTrans(gid, { status: stored.status, owner: stored.owner }, { status: "aborting", updateTime: now, ...claim, ...rollbackReason }, [])) {
        this.logChange({ gid, transType: stored.transType, from: stored.status, to: "aborting", cause: "abort" });
        const aborting: TransGlobal = { ...stored, status: "aborting", updateTime: now, ...claim, rollbackReason: reason || stored.rollbackReason };
        await this.processAfterRequest(aborting, waits, undefined, "abort", true, stored.owner);
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

  /**
   * A submit for a gid that exists: prepared -> submitted; submitted continues from the stored
   * branches (docs/deviations.md D2). Either takes the claim with a status CAS (docs/fencing.md), unless a running
   * pass holds it (`claimed` false: that pass drives the trans), a msg delay defers the work to
   * the cron, or a failed pass's backoff has not run out (the cron runs the next pass when it has).
   */
  private async resubmit(req: TransRequest, delay: number): Promise<{ trans: TransGlobal; claimed: boolean; previousOwner: string }> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const stored = await this.deps.store.findTrans(req.gid);
      if (!stored) break;
      const now = this.deps.clock.now();
      if (stored.status === "submitted") {
        // Held by a pass, or in a backoff or msg delay: the repeated submit changes nothing (D2).
        if (this.notDue(stored, now)) return { trans: stored, claimed: false, previousOwner: "" };
      } else if (stored.status !== "prepared") {
        throw failure(`current status '${stored.status}', cannot sumbmit.`);
      }
      // A prepared msg with a delay is left to the cron; everything else runs now, under a new claim.
      const claim = stored.status === "prepared" && delay > 0 ? { owner: "", nextCronTime: now + delay } : this.newClaim(stored, now);
      if (await this.deps.store.updateTrans(req.gid, { status: stored.status, owner: stored.owner }, { status: "submitted", updateTime: now, ...claim }, [])) {
        this.logChange({ gid: req.gid, transType: stored.transType, from: stored.status, to: "submitted", cause: "submit" });
        return { trans: { ...stored, status: "submitted", updateTime: now, ...claim }, claimed: claim.owner !== "", previousOwner: stored.owner };
      }
    }
    throw new CoordinatorError("INTERNAL", `gid ${req.gid} changed concurrently while being submitted; retry the request`);
  }

  /**
   * Whether the trans's next pass is not due yet: a pass holds it (its lease runs), or a failed
   * pass's backoff (or a msg delay) has not run out. A repeated request then leaves it alone, so
   * a client retrying never makes the participants see a retry sooner than the backoff allows.
   */
  private notDue(trans: TransGlobal, now: number): boolean {
    return trans.nextCronTime > now;
  }

  /** A new claim for a request's pass: a fresh fencing token and a first lease of one retry interval. */
  private newClaim(trans: TransGlobal, now: number): { owner: string; nextCronTime: number } {
    return { owner: this.deps.newToken(), nextCronTime: now + baseInterval(trans, this.deps.timing) };
  }

  /**
   * Runs a pass now. With wait_result it waits for the pass and reports the truth about the
   * trans (docs/deviations.md, D11; the rule is {@link waitVerdict}): 200 once it ended as asked,
   * 409 FAILURE once it ended the other way, 425 ONGOING while it is unfinished.
   */
  private async processAfterRequest(
    trans: TransGlobal, waitResult: boolean, branches?: Branch[], request: WaitRequest = "submit", claimed = true, previousOwner = "",
  ): Promise<void> {
    if (claimed && !this.deps.admission.tryStart()) return this.leaveToCron(trans, waitResult, previousOwner);
    // Without the claim, a pass running here is joined; one running elsewhere is left alone.
    const pass = claimed ? this.deps.executor.process(trans, branches, previousOwner) : this.deps.executor.runningPass(trans.gid);
    if (!waitResult) {
      pass?.catch((error: unknown) => {
        this.deps.logger.error({ gid: trans.gid, err: error }, "processing after request failed; the cron will retry");
      });
      return;
    }
    const result: PassResult = pass ? await pass : { trans, ongoing: false, lostRace: true };
    // A pass that lost a race (or ran elsewhere) knows only the status it expected; the store knows the real one.
    const settled = result.lostRace ? ((await this.deps.store.findTrans(trans.gid)) ?? result.trans) : result.trans;
    this.reportWaited(settled, request, result.lastError);
  }

  private reportWaited(trans: TransGlobal, request: WaitRequest, lastError?: string): void {
    const verdict = waitVerdict(trans.transType, request, trans.status);
    if (verdict === "SUCCESS") return;
    // dtm's clients search the whole body for FAILURE and ONGOING (ONGOING first), so quoted
    // branch text must not carry the other outcome's word.
    if (verdict === "FAILURE") {
      const reason = trans.rollbackReason ? quiet(trans.rollbackReason, "ONGOING") : `transaction ${trans.gid} ended ${trans.status}; wait result not return success:`;
      throw failure(reason);
    }
    throw ongoing(`transaction ${trans.gid} is ${trans.status}; still in progress${lastError ? `: ${quiet(lastError, "FAILURE")}` : ""}`);
  }

  /**
   * Past the pass cap the trans is not run here: it is made due now (unless it already is) and the
   * recovery loop runs it when a slot frees. With wait_result the client learns it is unfinished
   * (425 ONGOING), which is the truth; see docs/overload.md.
   */
  private async leaveToCron(trans: TransGlobal, waitResult: boolean, previousOwner: string): Promise<void> {
    const now = this.deps.clock.now();
    if (trans.owner !== "") {
      // This request holds the claim (docs/fencing.md): give it up and make the trans due now in
      // one fenced write; a reset would leave a held lease alone until it runs out. A doubt the
      // replaced claim carried (docs/deviations.md D14) stays in owner for the next claim.
      const owner = releasedOwner(trans.owner, tokenDefersResults(previousOwner));
      await this.deps.store.updateTrans(trans.gid, { status: trans.status, owner: trans.owner }, { updateTime: now, owner, nextCronTime: now }, []);
    } else if (trans.nextCronTime > now) {
      await this.deps.store.resetNextCronTime(trans.gid, now);
    }
    this.deps.admission.deferred();
    if (waitResult) throw ongoing(`transaction ${trans.gid} is ${trans.status}; the coordinator is busy and the recovery loop will run it shortly`);
  }

  async forceStop(body: unknown): Promise<void> {
    const gid = parseGid(asObject(body)["gid"]);
    for (let attempt = 0; attempt < 5; attempt++) {
      const stored = await this.mustFind(gid);
      if (isFinal(stored.status)) throw failure(`global transaction force stop error. status: ${stored.status}. error:`);
      const now = this.deps.clock.now();
      // A CAS on the owner read too: it wins against a running pass, whose next write is then refused.
      const won = await this.deps.store.updateTrans(gid, { status: stored.status, owner: stored.owner },
        { status: "failed", updateTime: now, rollbackTime: now, rollbackReason: stored.rollbackReason || "force stopped", owner: "" }, []);
      if (won) {
        this.logChange({ gid, transType: stored.transType, from: stored.status, to: "failed", cause: "force-stop" });
        return;
      }
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

  private logChange(change: StatusChange): void {
    logStatusChange(this.deps.logger, change);
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

/** `text` with `word` lower-cased, so that a client searching for the word does not find it there. */
function quiet(text: string, word: "FAILURE" | "ONGOING"): string {
  return text.replaceAll(word, word.toLowerCase());
}

/** The most items one `/all` page holds (docs/deviations.md, D12). */
const MAX_PAGE = 1000;

function parseScanQuery(params: Record<string, string | undefined>): ScanQuery {
  const int = (key: string, fallback: number | undefined, max: number): number | undefined => {
    const raw = params[key];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0 || n > max) throw new CoordinatorError("INVALID_REQUEST", `${key} must be a whole number between 0 and ${max}`);
    return n;
  };
  // A page holds at most MAX_PAGE items, as scanKV's; a larger limit is clamped, not refused (docs/deviations.md D12).
  const limit = Math.min(int("limit", 100, Number.MAX_SAFE_INTEGER) ?? 100, MAX_PAGE);
  const q: ScanQuery = { position: String(int("position", undefined, Number.MAX_SAFE_INTEGER) ?? ""), limit };
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
