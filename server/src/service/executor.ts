import type { Decision, Pass, Processor } from "../core/pass.ts";
import { markInvoked, newPass, recordOutcome } from "../core/pass.ts";
import type { TimingConfig } from "../core/retry.ts";
import { baseInterval, nextInterval, requestTimeout, retryAt } from "../core/retry.ts";
import type { BackoffEvent, Branch, GlobalStatus, Outcome, TransGlobal, TransType } from "../core/types.ts";
import { isFinal } from "../core/types.ts";
import type { Clock } from "../core/clock.ts";
import type { BranchInvoker } from "../driver/invoker.ts";
import type { Logger } from "../logger.ts";
import { redactUrls, urlForLog } from "../logger.ts";
import type { BranchUpdate, Store, TransPatch } from "../store/store.ts";
import { Claim, releasedOwner, tokenDefersResults } from "./claim.ts";
import type { LeaseConfig } from "./claim.ts";
import type { CrashPoints } from "./crash-points.ts";
import { logStatusChange } from "./status-log.ts";

export interface ExecutorDeps {
  store: Store;
  invoker: BranchInvoker;
  clock: Clock;
  timing: TimingConfig;
  processors: Partial<Record<TransType, Processor>>;
  logger: Logger;
  crash: CrashPoints;
  random: () => number;
  /** How long leases are and the slack they keep beyond a call's deadline (docs/fencing.md). */
  lease: LeaseConfig;
  /** Told when a trans backs off again after errors (drives the alert webhook). */
  onBackoff?: (event: BackoffEvent) => void;
  /** Told when a pass ends (drives the metrics); a pass that threw is not reported. */
  onPassEnd?: (trans: TransGlobal, result: PassResult) => void;
}

/** What one pass ended with. */
export interface PassResult {
  trans: TransGlobal;
  /** The last error or non-terminal failure a branch reported in this pass, if any. */
  lastError?: string;
  /** True if the last outcome seen was ONGOING. */
  ongoing: boolean;
  /**
   * True if the pass lost its claim (another claim took the trans, or another writer changed its
   * status): it stopped at once and its state is then unknown.
   */
  lostRace: boolean;
}

interface RunningPass {
  /** The fencing token of the claim this pass runs under. */
  token: string;
  pass: Promise<PassResult>;
}

/** A safety net against a processor bug that would spin forever; real passes take a few steps per branch. */
const MAX_STEPS_PER_BRANCH = 64;

/**
 * Runs passes: asks the trans's processor what to do, does it (branch calls, store writes), and
 * folds the results back in, until the processor says stop or done. The only place where the
 * pure planner meets I/O.
 *
 * Every pass runs under a claim (docs/fencing.md): the trans it is given carries the claim's
 * fencing token in `owner` and its lease in `nextCronTime`. Every write is a CAS on the status and
 * that token; before each call the lease must cover the call's deadline plus a margin (renewed
 * first if not), and a background timer renews the leases of long passes. A pass whose write or
 * renewal is refused has lost its claim: it starts no further call, cuts off those in flight and
 * ends. One pass per gid at a time in this process: a second request with the same claim joins
 * the running pass; a new claim of a gid still running here (the old pass outlived its lease in a
 * pause) runs once the old, doomed pass has ended.
 */
export class Executor {
  private readonly running = new Map<string, RunningPass>();
  private readonly claims = new Set<Claim>();
  private renewTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: ExecutorDeps) {}

  /**
   * Runs a pass under the claim in `trans.owner`. `previousOwner` is the token the claim replaced
   * ("" when nobody held the trans): if that pass deferred branch results, some may be missing.
   */
  process(trans: TransGlobal, branches?: Branch[], previousOwner = ""): Promise<PassResult> {
    const existing = this.running.get(trans.gid);
    if (existing && existing.token === trans.owner) return existing.pass;
    const run = existing
      ? existing.pass.then(noop, noop).then(() => this.runReported(trans, branches, previousOwner))
      : this.runReported(trans, branches, previousOwner);
    const entry: RunningPass = {
      token: trans.owner,
      pass: run.finally(() => {
        if (this.running.get(trans.gid) === entry) this.running.delete(trans.gid);
      }),
    };
    this.running.set(trans.gid, entry);
    return entry.pass;
  }

  /** The pass running in this process for `gid`, if any (a request that may not claim joins it). */
  runningPass(gid: string): Promise<PassResult> | undefined {
    return this.running.get(gid)?.pass;
  }

  /** Resolves once every pass that is running now has ended (used for graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.running.values()].map((r) => r.pass));
  }

  get inFlight(): number {
    return this.running.size;
  }

  private runReported(trans: TransGlobal, branches: Branch[] | undefined, previousOwner: string): Promise<PassResult> {
    const { onPassEnd } = this.deps;
    const run = this.runClaimed(trans, branches, previousOwner);
    if (!onPassEnd) return run;
    return run.then((result) => {
      onPassEnd(trans, result);
      return result;
    });
  }

  private async runClaimed(trans: TransGlobal, branches: Branch[] | undefined, previousOwner: string): Promise<PassResult> {
    if (trans.owner === "") throw new Error(`a pass on ${trans.gid} needs a claim (a fencing token in owner)`);
    const { store, clock, lease } = this.deps;
    const claim = new Claim(trans.gid, trans.owner, trans.nextCronTime, store, clock, lease);
    const calls = new CallTracker();
    this.track(claim);
    try {
      const result = await this.runPass(trans, claim, calls, branches, tokenDefersResults(previousOwner));
      if (result.lostRace) {
        this.deps.logger.warn({ gid: trans.gid, owner: claim.token, status: result.trans.status }, "lost the claim on the transaction; pass stopped");
      }
      return result;
    } finally {
      // Calls still in flight (a lost claim, a throw) are cut off, and the pass ends only once
      // they have: a later pass on this gid never overlaps them.
      claim.end();
      await calls.settled();
      this.untrack(claim);
    }
  }

  /** Background renewal of every running pass's lease (docs/fencing.md), every leaseMs/3. */
  private track(claim: Claim): void {
    this.claims.add(claim);
    if (this.renewTimer) return;
    this.renewTimer = setInterval(() => {
      for (const c of this.claims) {
        c.refresh().catch((error: unknown) => {
          this.deps.logger.warn({ gid: c.gid, err: error }, "lease renewal failed; retrying at the next tick");
        });
      }
    }, Math.max(1, this.deps.lease.leaseMs / 3));
    // Renewals never keep the process alive on their own.
    this.renewTimer.unref();
  }

  private untrack(claim: Claim): void {
    this.claims.delete(claim);
    if (this.claims.size === 0 && this.renewTimer) {
      clearInterval(this.renewTimer);
      this.renewTimer = undefined;
    }
  }

  private async runPass(trans: TransGlobal, claim: Claim, calls: CallTracker, knownBranches: Branch[] | undefined, resultsMayBeMissing: boolean): Promise<PassResult> {
    const { store, processors, clock } = this.deps;
    const processor = processors[trans.transType];
    const current: TransGlobal = { ...trans };
    if (!processor || isFinal(trans.status)) return { trans: current, ongoing: false, lostRace: false };
    let branches = knownBranches ?? (await store.findBranches(trans.gid));
    let pass = newPass(trans, branches, resultsMayBeMissing);
    // With deferBranchResults (the claim's token says so, docs/deviations.md D14) a success is
    // written with the pass's next write that happens anyway, not before the calls it unlocks.
    const defers = tokenDefersResults(claim.token);
    let lastError: string | undefined;
    let lastErrorUrl = "";
    let ongoing = false;
    let maxSteps = MAX_STEPS_PER_BRANCH * (branches.length + 4);

    const timeoutMs = requestTimeout(trans, this.deps.timing);

    for (let step = 0; step < maxSteps; step++) {
      if (claim.isLost) return { trans: current, lastError, ongoing, lostRace: true };
      const now = clock.now();
      const decision: Decision = processor.decide(pass, now);
      switch (decision.kind) {
        case "invoke":
          if (decision.indexes.length === 0) throw new Error(`processor for ${trans.transType} asked to invoke nothing`);
          // A branch may be chosen because an earlier one succeeded; that success must be durable
          // before the call goes out, or a crash would leave a started branch whose prerequisite
          // looks unfinished, and recovery would not know to compensate it. The same write
          // renews the lease if it would not cover the calls. A deferring pass skips it: its
          // token tells a pass taking over that results may be missing (pass.resultsMayBeMissing).
          if (pass.dirty.size > 0 && !defers) {
            const patch: TransPatch = { updateTime: now };
            if (!claim.covers(timeoutMs)) patch.nextCronTime = claim.keep(now + timeoutMs + this.deps.lease.marginMs + this.deps.lease.leaseMs / 2);
            if (!(await this.write(pass, current, claim, patch, now))) return { trans: current, lastError, ongoing, lostRace: true };
          }
          if (!(await this.leaseCovers(claim, timeoutMs))) return { trans: current, lastError, ongoing, lostRace: true };
          for (const index of decision.indexes) this.startCall(pass, processor, branches, index, current, calls, decision.retry === true, timeoutMs, claim.signal);
          break;
        case "await": {
          if (pass.inFlight.size === 0) throw new Error(`processor for ${trans.transType} awaits with nothing in flight`);
          for (const { index, outcome } of await calls.next()) {
            this.deps.crash.reach("afterBranchCall", trans.gid);
            this.apply(pass, processor, index, outcome);
            if (outcome.kind === "error" || outcome.kind === "failure") {
              lastError = outcome.message;
              lastErrorUrl = pass.branches[index]?.url ?? "";
            }
            ongoing = outcome.kind === "ongoing";
          }
          break;
        }
        case "checkBack": {
          if (!(await this.leaseCovers(claim, timeoutMs))) return { trans: current, lastError, ongoing, lostRace: true };
          const outcome = await this.checkBack(current, decision.op, decision.body, timeoutMs, claim.signal);
          pass.checkBack = outcome;
          if (outcome.kind === "error" || outcome.kind === "failure") {
            lastError = outcome.message;
            lastErrorUrl = current.queryPrepared;
            // A workflow resume is retried at the same interval, so reportBackoff never sees it.
            if (current.transType === "workflow") this.reportFailedResume(current, outcome.message);
          }
          ongoing = outcome.kind === "ongoing";
          break;
        }
        case "transition": {
          const from = pass.trans.status;
          const won = await this.transition(pass, current, claim, decision.to, decision.reason, now);
          if (!won) return { trans: current, lastError, ongoing, lostRace: true };
          if (isFinal(decision.to)) return { trans: current, lastError, ongoing, lostRace: false };
          if (from === "prepared") {
            // Branches are registered only while the trans is prepared (atomically with that
            // status), so the list read at the start of this pass may lack one registered since;
            // read after the CAS out of prepared, it is complete. A rollback that went by the
            // stale list would leave the newer branch's TCC try or XA prepare behind.
            branches = await store.findBranches(trans.gid);
            pass = newPass(current, branches, resultsMayBeMissing);
            maxSteps = step + MAX_STEPS_PER_BRANCH * (branches.length + 4);
          }
          break;
        }
        case "stop": {
          const won = await this.scheduleRetry(pass, current, claim, decision.retry, now, decision.at);
          if (won && decision.retry === "backoff") this.reportBackoff(current, lastErrorUrl, lastError ?? "");
          return { trans: current, lastError, ongoing, lostRace: !won };
        }
        case "done": {
          // Nothing to write: the claim is left to lapse with its lease (no extra store trip),
          // unless a doubt must be handed on that the token does not carry (see release).
          const release = this.release(pass, claim, current.status);
          const mustWrite = pass.dirty.size > 0 || (release.owner !== undefined && release.owner !== "" && release.owner !== claim.token);
          const won = !mustWrite || (await this.write(pass, current, claim, { updateTime: now, ...release }, now));
          return { trans: current, lastError, ongoing, lostRace: !won };
        }
      }
    }
    throw new Error(`pass for ${trans.gid} did not settle after ${maxSteps} steps`);
  }

  /**
   * The lease rule (docs/fencing.md): a call of `timeoutMs` may start only if the lease runs
   * until its deadline plus the margin. Checked locally; renewed in the store only when short.
   */
  private async leaseCovers(claim: Claim, timeoutMs: number): Promise<boolean> {
    if (claim.isLost) return false;
    return claim.covers(timeoutMs) || (await claim.extendFor(timeoutMs));
  }

  /**
   * The patch that gives the claim up at the end of a pass: nobody holds the trans until its next
   * claim. A pass that took over with results possibly missing (docs/deviations.md D14) and
   * leaves the trans unfinished hands that doubt on: `owner` keeps a token marked as deferring,
   * so the next claim's `previousOwner` says so again, until the trans is final.
   */
  private release(pass: Pass, claim: Claim, status: GlobalStatus): Pick<TransPatch, "owner"> {
    // Calls still in flight keep the claim (and its lease) until they are over.
    if (pass.inFlight.size > 0) return {};
    return { owner: releasedOwner(claim.token, pass.resultsMayBeMissing && !isFinal(status)) };
  }

  private startCall(
    pass: Pass, processor: Processor, branches: Branch[], index: number, trans: TransGlobal, calls: CallTracker, isRetry: boolean,
    timeoutMs: number, signal: AbortSignal,
  ): void {
    const branch = branches[index];
    if (!branch) throw new Error(`processor chose branch index ${index} of ${branches.length}`);
    markInvoked(pass, index, isRetry);
    if (branch.url === "") {
      this.apply(pass, processor, index, { kind: "success" });
      return;
    }
    this.deps.crash.reach("beforeBranchCall", trans.gid);
    calls.add(
      index,
      this.deps.invoker.invoke({
        gid: trans.gid,
        transType: trans.transType,
        protocol: trans.protocol,
        branchId: branch.branchId,
        op: branch.op,
        url: branch.url,
        body: branch.binData,
        headers: trans.options.branchHeaders,
        timeoutMs,
        signal,
      }),
    );
  }

  /** Not routine like a busy branch: a key mismatch (docs/security.md#signed-branch-calls) holds every call to that participant. */
  private warnUnauthenticated(gid: string, branchId: string | undefined, op: string | undefined, url: string, message: string): void {
    this.deps.logger.warn(
      { gid, branchId, op, url: urlForLog(url), error: redactUrls(message) },
      "branch refused the call as unauthenticated (HTTP 401 / gRPC UNAUTHENTICATED); check the branch signing keys; retrying",
    );
  }

  private async checkBack(trans: TransGlobal, op: string, body: Uint8Array, timeoutMs: number, signal: AbortSignal): Promise<Outcome> {
    if (trans.queryPrepared === "") return { kind: "success" };
    const outcome = await this.deps.invoker.invoke({
      gid: trans.gid,
      transType: trans.transType,
      protocol: trans.protocol,
      branchId: "00",
      op,
      url: trans.queryPrepared,
      body,
      headers: trans.options.branchHeaders,
      timeoutMs,
      signal,
    });
    if (outcome.kind === "error" && outcome.unauthenticated) this.warnUnauthenticated(trans.gid, "00", op, trans.queryPrepared, outcome.message);
    return outcome;
  }

  private reportBackoff(trans: TransGlobal, branchUrl: string, error: string): void {
    const base = baseInterval(trans, this.deps.timing);
    const retryCount = Math.floor(Math.log2(trans.nextCronInterval / base));
    this.deps.logger.warn(
      { gid: trans.gid, transType: trans.transType, status: trans.status, retryCount, nextRetryMs: trans.nextCronInterval, branch: urlForLog(branchUrl), error: redactUrls(error) },
      "branch call failed; retrying later",
    );
    this.deps.onBackoff?.({ gid: trans.gid, status: trans.status, retryCount, branchUrl, error });
  }

  private reportFailedResume(trans: TransGlobal, error: string): void {
    const callback = urlForLog(trans.queryPrepared);
    this.deps.logger.warn(
      { gid: trans.gid, transType: trans.transType, status: trans.status, callback, error: error.split(trans.queryPrepared).join(callback) },
      "workflow resume failed; resuming again later",
    );
  }

  private apply(pass: Pass, processor: Processor, index: number, outcome: Outcome): void {
    const branch = pass.branches[index];
    recordOutcome(pass, index, outcome, branch !== undefined && processor.failureIsTerminal(branch));
    if (outcome.kind === "error" && outcome.unauthenticated) {
      this.warnUnauthenticated(pass.trans.gid, branch?.branchId, branch?.op, branch?.url ?? "", outcome.message);
    } else if (outcome.kind !== "success") {
      this.deps.logger.debug({ gid: pass.trans.gid, branchId: branch?.branchId, op: branch?.op, outcome: outcome.kind, error: "message" in outcome ? redactUrls(outcome.message) : undefined }, "branch did not succeed");
    }
  }

  private async transition(pass: Pass, current: TransGlobal, claim: Claim, to: GlobalStatus, reason: string | undefined, now: number): Promise<boolean> {
    const patch: TransPatch = { status: to, updateTime: now };
    if (to === "succeed") patch.finishTime = now;
    if (to === "failed") patch.rollbackTime = now;
    if (reason !== undefined) patch.rollbackReason = reason;
    if (!isFinal(to)) {
      // Keeps a recovery lease: if this process dies mid-pass, the cron resumes after one interval
      // (and never before the calls still in flight have passed their deadline).
      patch.nextCronTime = claim.keep(now + baseInterval(current, this.deps.timing));
    } else {
      Object.assign(patch, this.release(pass, claim, to));
    }
    this.deps.crash.reach("beforeStatusWrite", current.gid);
    const from = pass.trans.status;
    const won = await this.write(pass, current, claim, patch, now);
    if (won) {
      logStatusChange(this.deps.logger, { gid: current.gid, transType: current.transType, from, to, cause: "pass" });
      pass.trans.status = to;
      if (reason !== undefined) pass.trans.rollbackReason = reason;
    }
    return won;
  }

  private async scheduleRetry(pass: Pass, current: TransGlobal, claim: Claim, kind: "reset" | "keep" | "backoff", now: number, at?: number): Promise<boolean> {
    const { timing, random } = this.deps;
    const interval = nextInterval(current.nextCronInterval, kind, baseInterval(current, timing), timing);
    const release = this.release(pass, claim, current.status);
    const retry = at ?? retryAt(now, interval, timing, random());
    const nextCronTime = release.owner === undefined ? claim.keep(retry) : retry;
    return this.write(pass, current, claim, { updateTime: now, nextCronInterval: interval, nextCronTime, ...release }, now);
  }

  /**
   * One atomic write of the trans patch and every branch status changed since the last write: a
   * CAS on the status and the claim's fencing token (docs/fencing.md).
   */
  private async write(pass: Pass, current: TransGlobal, claim: Claim, patch: TransPatch, now: number): Promise<boolean> {
    const updates: BranchUpdate[] = [];
    for (const [index, status] of pass.dirty) {
      const b = pass.branches[index];
      if (b) updates.push({ branchId: b.branchId, op: b.op, status, finishTime: now });
    }
    const expected = { status: pass.trans.status, owner: claim.token };
    // A write that gives the claim up no longer moves this pass's lease.
    const leaseAfter = patch.owner === undefined ? patch.nextCronTime : undefined;
    const won = await claim.write(() => this.deps.store.updateTrans(current.gid, expected, patch, updates), leaseAfter);
    if (!won) return false;
    pass.dirty.clear();
    Object.assign(current, definedFields(patch));
    return true;
  }
}

function noop(): void {}

function definedFields(patch: TransPatch): Partial<TransGlobal> {
  const out: Partial<TransGlobal> = {};
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** Collects answers of in-flight calls and hands them out in arrival order. */
class CallTracker {
  private ready: { index: number; outcome: Outcome }[] = [];
  private waiter: (() => void) | undefined;
  private readonly pending = new Set<Promise<void>>();

  add(index: number, call: Promise<Outcome>): void {
    const settled = call
      .catch((error: unknown): Outcome => ({ kind: "error", message: error instanceof Error ? error.message : String(error) }))
      .then((outcome) => {
        this.pending.delete(settled);
        this.ready.push({ index, outcome });
        const wake = this.waiter;
        this.waiter = undefined;
        wake?.();
      });
    this.pending.add(settled);
  }

  /** Resolves once every call added has answered (or been cut off). */
  async settled(): Promise<void> {
    if (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  async next(): Promise<{ index: number; outcome: Outcome }[]> {
    if (this.ready.length === 0) await new Promise<void>((resolve) => (this.waiter = resolve));
    const taken = this.ready;
    this.ready = [];
    return taken;
  }
}
