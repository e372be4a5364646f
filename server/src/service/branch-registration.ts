import { clip, describeValue } from "../core/echo.ts";
import { CoordinatorError } from "../core/errors.ts";
import type { BranchStatus, TransGlobal } from "../core/types.ts";
import { BRANCH_STATUSES } from "../core/types.ts";
import type { Clock } from "../core/clock.ts";
import type { NewBranch, Store } from "../store/store.ts";
import type { RequestLimits } from "./request.ts";
import { asObject, checkBranchUrl, parseGid, parseTransType } from "./request.ts";

const BRANCH_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const OP = /^[A-Za-z0-9_.:-]{1,45}$/;

/** dtm's words ("no trans with gid: X status: prepared found"), which its users may grep for, and why. */
function notPrepared(gid: string, why: string): CoordinatorError {
  return new CoordinatorError("TRANS_NOT_PREPARED", `no trans with gid: ${gid} status: prepared found (${why}) FAILURE`);
}

function field(o: Record<string, string>, key: string): string {
  return o[key] ?? "";
}

/**
 * registerBranch bodies are flat maps of strings (docs/protocol.md#http-routes). Only the gRPC adapter may pass
 * `data` as raw bytes (BusiPayload); JSON can never produce a Uint8Array.
 */
function asStringMap(body: unknown): { fields: Record<string, string>; data: Uint8Array } {
  const o = asObject(body);
  const fields: Record<string, string> = {};
  let data: Uint8Array = new Uint8Array(0);
  for (const [k, v] of Object.entries(o)) {
    if (k === "data" && v instanceof Uint8Array) {
      data = v;
      continue;
    }
    if (typeof v !== "string") throw new CoordinatorError("INVALID_BRANCH", `${clip(k)} must be a string; got ${describeValue(v)}`);
    if (k === "data") data = Buffer.from(v, "utf8");
    else fields[k] = v;
  }
  return { fields, data };
}

/**
 * registerBranch for TCC, XA and workflow (docs/protocol.md#http-routes): adds branch rows to a trans that is
 * still prepared, atomically with the status check. An identical repeat is accepted (docs/deviations.md D4); a
 * conflicting one is refused.
 */
export class BranchRegistration {
  constructor(private readonly store: Store, private readonly clock: Clock, private readonly limits: RequestLimits) {}

  async register(body: unknown): Promise<void> {
    const { fields: o, data } = asStringMap(body);
    const gid = parseGid(o["gid"]);
    const transType = parseTransType(o["trans_type"]);
    if (transType !== "tcc" && transType !== "xa" && transType !== "workflow") {
      throw new CoordinatorError("UNSUPPORTED_TRANS_TYPE", `registerBranch takes tcc, xa or workflow branches, not ${transType}`);
    }
    const branchId = field(o, "branch_id");
    if (!BRANCH_ID.test(branchId)) throw new CoordinatorError("INVALID_BRANCH", "branch_id must be 1-128 characters from [A-Za-z0-9_.:-]");
    if (data.byteLength > this.limits.maxPayloadBytes) {
      throw new CoordinatorError("PAYLOAD_TOO_LARGE", `data is ${data.byteLength} bytes; the limit is ${this.limits.maxPayloadBytes}`);
    }
    const stored = await this.store.findTrans(gid);
    // dtm answers FAILURE (409) here, not "not found": a TCC or XA client must abort on it.
    if (!stored) throw notPrepared(gid, "no transaction has that gid");
    if (stored.transType !== transType) {
      throw new CoordinatorError("UNSUPPORTED_TRANS_TYPE", `gid ${gid} is a ${stored.transType} transaction, not ${transType}`);
    }
    const now = this.clock.now();
    const rows = this.rowsFor(stored, o, branchId, data, now);
    const result = await this.store.appendBranches(gid, "prepared", rows, now);
    if (result === "not_found") throw notPrepared(gid, "no transaction has that gid");
    if (result === "status_mismatch") throw notPrepared(gid, `it is ${(await this.store.findTrans(gid))?.status ?? "gone"}`);
    if (result === "conflict") {
      throw new CoordinatorError("BRANCH_CONFLICT", `branch ${branchId} of ${gid} is already registered with a different URL or payload`);
    }
  }

  private rowsFor(trans: TransGlobal, o: Record<string, string>, branchId: string, data: Uint8Array, now: number): NewBranch[] {
    const row = (op: string, url: string, status: BranchStatus = "prepared"): NewBranch => ({
      gid: trans.gid, branchId, op, url, binData: data, status, createTime: now, updateTime: now, finishTime: status === "prepared" ? null : now,
    });
    if (trans.transType === "tcc") {
      const confirm = field(o, "confirm");
      const cancel = field(o, "cancel");
      checkBranchUrl(confirm, trans.protocol, "confirm", this.limits.urlPolicy);
      checkBranchUrl(cancel, trans.protocol, "cancel", this.limits.urlPolicy);
      return [row("cancel", cancel), row("confirm", confirm)];
    }
    if (trans.transType === "xa") {
      const url = field(o, "url");
      if (url === "") throw new CoordinatorError("INVALID_BRANCH", "url (the phase-2 URL) is required for an xa branch");
      checkBranchUrl(url, trans.protocol, "url", this.limits.urlPolicy);
      return [row("rollback", url), row("commit", url)];
    }
    const op = field(o, "op");
    const status = field(o, "status");
    if (!OP.test(op)) throw new CoordinatorError("INVALID_BRANCH", "op must be 1-45 characters from [A-Za-z0-9_.:-]");
    if (!(BRANCH_STATUSES as readonly string[]).includes(status)) {
      throw new CoordinatorError("INVALID_BRANCH", `status must be one of ${BRANCH_STATUSES.join(", ")}`);
    }
    return [row(op, "", status as BranchStatus)];
  }
}
