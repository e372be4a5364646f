import { CoordinatorError, failure } from "../core/errors.ts";
import type { TimingConfig } from "../core/retry.ts";
import { baseInterval } from "../core/retry.ts";
import type { Branch, GlobalStatus, TransGlobal } from "../core/types.ts";
import { GLOBAL_STATUSES, isFinal, TRANS_TYPES } from "../core/types.ts";
import type { Clock } from "../cron/clock.ts";
import type { Logger } from "../logger.ts";
import type { NewTrans, ScanQuery, Store } from "../store/store.ts";
import { generateBranches } from "./branches.ts";
import type { Executor, PassResult } from "./executor.ts";
import type { RequestLimits, TransRequest } from "./request.ts";
import { asObject, parseGid, parseTransRequest } from "./request.ts";
import { newGid } from "./gid.ts";

export interface TransServiceDeps {
  store: Store;
  executor: Executor;
  clock: Clock;
  timing: TimingConfig;
  limits: RequestLimits;
  logger: Logger;
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
  constructor(private readonly deps: TransServiceDeps) {}

  newGid(): string {
    return newGid();
  }

  async submit(body: unknown): Promise<void> {
    const req = parseTransRequest(body, this.deps.limits);
    const now = this.deps.clock.now();
    const fresh = this.newTrans(req, "submitted", now);
    const branches = generateBranches(req, now);
    const created = await this.deps.store.saveNewTrans(fresh, branches);
    if (created === "created") {
      const known = branches.map((b) => ({ ...b, id: 0 }));
      await this.processAfterRequest({ ...fresh, id: 0 }, req.options.waitResult, true, known);
      return;
    }
    const trans = await this.resubmit(req);
    await this.processAfterRequest(trans, req.options.waitResult || trans.options.waitResult, true);
  }

  /** A submit for a gid that exists: prepared -> submitted; submitted continues from the stored branches (D2). */
  private async resubmit(req: TransRequest): Promise<TransGlobal> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const stored = await this.deps.store.findTrans(req.gid);
      if (!stored) break;
      if (stored.status === "submitted") return stored;
      if (stored.status !== "prepared") throw failure(`current status '${stored.status}', cannot sumbmit.`);
      const now = this.deps.clock.now();
      if (await this.deps.store.updateTrans(req.gid, "prepared", { status: "submitted", updateTime: now }, [])) {
        return { ...stored, status: "submitted", updateTime: now };
      }
    }
    throw new CoordinatorError("INTERNAL", `gid ${req.gid} changed concurrently while being submitted; retry the request`);
  }

  /** Runs a pass now: waits for it and reports its outcome when wait_result is set (PROTOCOL §9.7). */
  private async processAfterRequest(trans: TransGlobal, waitResult: boolean, expectSuccess: boolean, branches?: Branch[]): Promise<void> {
    if (!waitResult) {
      this.deps.executor.process(trans, branches).catch((error: unknown) => {
        this.deps.logger.error({ gid: trans.gid, err: error }, "processing after request failed; the cron will retry");
      });
      return;
    }
    const result: PassResult = await this.deps.executor.process(trans, branches);
    if (expectSuccess && result.trans.status !== "succeed") {
      throw failure(result.trans.rollbackReason ? result.trans.rollbackReason : "wait result not return success:");
    }
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
