import type { Decision, Pass, Processor } from "../core/pass.ts";
import { markInvoked, newPass, recordOutcome } from "../core/pass.ts";
import type { TimingConfig } from "../core/retry.ts";
import { baseInterval, nextInterval, requestTimeout, retryAt } from "../core/retry.ts";
import type { Branch, GlobalStatus, Outcome, TransGlobal, TransType } from "../core/types.ts";
import { isFinal } from "../core/types.ts";
import type { Clock } from "../cron/clock.ts";
import type { BranchInvoker } from "../driver/invoker.ts";
import type { Logger } from "../logger.ts";
import { redactUrls, urlForLog } from "../logger.ts";
import type { BranchUpdate, Store, TransPatch } from "../store/store.ts";
import type { CrashPoints } from "./crash-points.ts";

export interface ExecutorDeps {
  store: Store;
  invoker: BranchInvoker;
  clock: Clock;
  timing: TimingConfig;
  processors: Partial<Record<TransType, Processor>>;
  logger: Logger;
  crash: CrashPoints;
  random: () => number;
  /** Told when a trans backs off again after errors (drives the alert webhook). */
  onBackoff?: (event: BackoffEvent) => void;
  /** Told when a pass ends (drives the metrics); a pass that threw is not reported. */
  onPassEnd?: (trans: TransGlobal, result: PassResult) => void;
}

export interface BackoffEvent {
  gid: string;
  status: string;
  /** floor(log2(interval / base)): how many times the interval has doubled (dtm's retry_count). */
  retryCount: number;
  branchUrl: string;
  error: string;
}

/** What one pass ended with. */
export interface PassResult {
  trans: TransGlobal;
  /** The last error or non-terminal failure a branch reported in this pass, if any. */
  lastError?: string;
  /** True if the last outcome seen was ONGOING. */
  ongoing: boolean;
  /** True if another writer changed the trans's status under us; its state is then unknown. */
  lostRace: boolean;
}

/** A safety net against a processor bug that would spin forever; real passes take a few steps per branch. */
const MAX_STEPS_PER_BRANCH = 64;

/**
 * Runs passes: asks the trans's processor what to do, does it (branch calls, store writes), and
 * folds the results back in, until the processor says stop or done. The only place where the
 * pure planner meets I/O. One pass per gid at a time in this process: a second request for a
 * gid whose pass is running joins that pass.
 */
export class Executor {
  private readonly running = new Map<string, Promise<PassResult>>();

  constructor(private readonly deps: ExecutorDeps) {}

  process(trans: TransGlobal, branches?: Branch[]): Promise<PassResult> {
    const existing = this.running.get(trans.gid);
    if (existing) return existing;
    const { onPassEnd } = this.deps;
    const run = this.runPass(trans, branches);
    const reported = onPassEnd
      ? run.then((result) => {
          onPassEnd(trans, result);
          return result;
        })
      : run;
    const pass = reported.finally(() => this.running.delete(trans.gid));
    this.running.set(trans.gid, pass);
    return pass;
  }

  /** Resolves once every pass that is running now has ended (used for graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  get inFlight(): number {
    return this.running.size;
  }

  private async runPass(trans: TransGlobal, knownBranches?: Branch[]): Promise<PassResult> {
    const { store, processors, clock } = this.deps;
    const processor = processors[trans.transType];
    const current: TransGlobal = { ...trans };
    if (!processor || isFinal(trans.status)) return { trans: current, ongoing: false, lostRace: false };
    const branches = knownBranches ?? (await store.findBranches(trans.gid));
    const pass = newPass(trans, branches);
    const calls = new CallTracker();
    let lastError: string | undefined;
    let lastErrorUrl = "";
    let ongoing = false;
    const maxSteps = MAX_STEPS_PER_BRANCH * (branches.length + 4);

    for (let step = 0; step < maxSteps; step++) {
      const now = clock.now();
      const decision: Decision = processor.decide(pass, now);
      switch (decision.kind) {
        case "invoke":
          if (decision.indexes.length === 0) throw new Error(`processor for ${trans.transType} asked to invoke nothing`);
          // A branch may be chosen because an earlier one succeeded; that success must be durable
          // before the call goes out, or a crash would leave a started branch whose prerequisite
          // looks unfinished, and recovery would not know to compensate it.
          if (pass.dirty.size > 0 && !(await this.write(pass, current, { updateTime: now }, now))) {
            return { trans: current, lastError, ongoing, lostRace: true };
          }
          for (const index of decision.indexes) this.startCall(pass, processor, branches, index, current, calls, decision.retry === true);
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
          const outcome = await this.checkBack(current, decision.op, decision.body);
          pass.checkBack = outcome;
          if (outcome.kind === "error" || outcome.kind === "failure") {
            lastError = outcome.message;
            lastErrorUrl = current.queryPrepared;
          }
          ongoing = outcome.kind === "ongoing";
          break;
        }
        case "transition": {
          const won = await this.transition(pass, current, decision.to, decision.reason, now);
          if (!won) return { trans: current, lastError, ongoing, lostRace: true };
          if (isFinal(decision.to)) return { trans: current, lastError, ongoing, lostRace: false };
          break;
        }
        case "stop": {
          const won = await this.scheduleRetry(pass, current, decision.retry, now, decision.at);
          if (won && decision.retry === "backoff") this.reportBackoff(current, lastErrorUrl, lastError ?? "");
          return { trans: current, lastError, ongoing, lostRace: !won };
        }
        case "done": {
          const won = pass.dirty.size === 0 || (await this.write(pass, current, { updateTime: now }, now));
          return { trans: current, lastError, ongoing, lostRace: !won };
        }
      }
    }
    throw new Error(`pass for ${trans.gid} did not settle after ${maxSteps} steps`);
  }

  private startCall(pass: Pass, processor: Processor, branches: Branch[], index: number, trans: TransGlobal, calls: CallTracker, isRetry: boolean): void {
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
        timeoutMs: requestTimeout(trans, this.deps.timing),
      }),
    );
  }

  private checkBack(trans: TransGlobal, op: string, body: Uint8Array): Promise<Outcome> {
    if (trans.queryPrepared === "") return Promise.resolve({ kind: "success" });
    return this.deps.invoker.invoke({
      gid: trans.gid,
      transType: trans.transType,
      protocol: trans.protocol,
      branchId: "00",
      op,
      url: trans.queryPrepared,
      body,
      headers: trans.options.branchHeaders,
      timeoutMs: requestTimeout(trans, this.deps.timing),
    });
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

  private apply(pass: Pass, processor: Processor, index: number, outcome: Outcome): void {
    const branch = pass.branches[index];
    recordOutcome(pass, index, outcome, branch !== undefined && processor.failureIsTerminal(branch));
    if (outcome.kind !== "success") {
      this.deps.logger.debug({ gid: pass.trans.gid, branchId: branch?.branchId, op: branch?.op, outcome: outcome.kind, error: "message" in outcome ? redactUrls(outcome.message) : undefined }, "branch did not succeed");
    }
  }

  private async transition(pass: Pass, current: TransGlobal, to: GlobalStatus, reason: string | undefined, now: number): Promise<boolean> {
    const patch: TransPatch = { status: to, updateTime: now };
    if (to === "succeed") patch.finishTime = now;
    if (to === "failed") patch.rollbackTime = now;
    if (reason !== undefined) patch.rollbackReason = reason;
    if (!isFinal(to)) {
      // Keeps a recovery lease: if this process dies mid-pass, the cron resumes after one interval.
      patch.nextCronTime = now + baseInterval(current, this.deps.timing);
    }
    this.deps.crash.reach("beforeStatusWrite", current.gid);
    const won = await this.write(pass, current, patch, now);
    if (won) {
      pass.trans.status = to;
      if (reason !== undefined) pass.trans.rollbackReason = reason;
    }
    return won;
  }

  private async scheduleRetry(pass: Pass, current: TransGlobal, kind: "reset" | "keep" | "backoff", now: number, at?: number): Promise<boolean> {
    const { timing, random } = this.deps;
    const interval = nextInterval(current.nextCronInterval, kind, baseInterval(current, timing), timing);
    const nextCronTime = at ?? retryAt(now, interval, timing, random());
    return this.write(pass, current, { updateTime: now, nextCronInterval: interval, nextCronTime }, now);
  }

  /** One atomic CAS write of the trans patch and every branch status changed since the last write. */
  private async write(pass: Pass, current: TransGlobal, patch: TransPatch, now: number): Promise<boolean> {
    const updates: BranchUpdate[] = [];
    for (const [index, status] of pass.dirty) {
      const b = pass.branches[index];
      if (b) updates.push({ branchId: b.branchId, op: b.op, status, finishTime: now });
    }
    const won = await this.deps.store.updateTrans(current.gid, pass.trans.status, patch, updates);
    if (!won) {
      this.deps.logger.info({ gid: current.gid, expected: pass.trans.status }, "status changed by another writer; pass abandoned");
      return false;
    }
    pass.dirty.clear();
    Object.assign(current, definedFields(patch));
    return true;
  }
}

function definedFields(patch: TransPatch): Partial<TransGlobal> {
  const out: Partial<TransGlobal> = {};
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** Collects answers of in-flight calls and hands them out in arrival order. */
class CallTracker {
  private ready: { index: number; outcome: Outcome }[] = [];
  private waiter: (() => void) | undefined;

  add(index: number, call: Promise<Outcome>): void {
    call
      .catch((error: unknown): Outcome => ({ kind: "error", message: error instanceof Error ? error.message : String(error) }))
      .then((outcome) => {
        this.ready.push({ index, outcome });
        const wake = this.waiter;
        this.waiter = undefined;
        wake?.();
      });
  }

  async next(): Promise<{ index: number; outcome: Outcome }[]> {
    if (this.ready.length === 0) await new Promise<void>((resolve) => (this.waiter = resolve));
    const taken = this.ready;
    this.ready = [];
    return taken;
  }
}
