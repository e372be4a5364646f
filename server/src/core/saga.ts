import type { Decision, Pass, Processor } from "./pass.ts";
import { retryKindOf } from "./pass.ts";
import type { TimingConfig } from "./retry.ts";
import { isTimedOut, timeoutReason } from "./retry.ts";
import type { SagaLayout } from "./saga-layout.ts";
import { sagaLayout } from "./saga-layout.ts";

/**
 * SAGA (docs/protocol.md#saga): run actions forward (in sequence, or as a DAG when concurrent), and on a
 * FAILURE, a timeout or an exhausted `retry_limit`, compensate in reverse every action that was
 * (or may have been) started.
 *
 * One deliberate refinement over dtm: before compensating, dtx waits for actions still in flight
 * to answer, so a compensation never overtakes its own action on the wire.
 */
export function sagaProcessor(cfg: TimingConfig): Processor {
  const layouts = new WeakMap<Pass, SagaLayout>();
  const layoutOf = (pass: Pass): SagaLayout => {
    let layout = layouts.get(pass);
    if (!layout) {
      layout = sagaLayout(pass.branches, pass.trans.customData);
      layouts.set(pass, layout);
    }
    return layout;
  };
  return {
    decide(pass: Pass, now: number): Decision {
      const layout = layoutOf(pass);
      if (pass.trans.status === "submitted") return decideForward(pass, layout, now, cfg);
      if (pass.trans.status === "aborting") return decideCompensation(pass, layout);
      return { kind: "done" };
    },
    failureIsTerminal: (branch) => branch.op === "action",
  };
}

function actionStatus(pass: Pass, layout: SagaLayout, step: number): string | undefined {
  const index = layout.actions[step];
  return index === undefined ? undefined : pass.branches[index]?.status;
}

/** Whether a step's prerequisites allow its action to run now (the forward rule, docs/protocol.md#saga). */
function prerequisitesMet(pass: Pass, layout: SagaLayout, step: number): boolean {
  if (!layout.concurrent && step > 0 && actionStatus(pass, layout, step - 1) !== "succeed") return false;
  return (layout.orders.get(step) ?? []).every((p) => actionStatus(pass, layout, p) === "succeed");
}

function decideForward(pass: Pass, layout: SagaLayout, now: number, cfg: TimingConfig): Decision {
  if (isTimedOut(pass.trans, now, cfg)) return { kind: "transition", to: "aborting", reason: timeoutReason(pass.trans, cfg) };
  const steps = layout.actions.length;
  let allSucceeded = true;
  for (let step = 0; step < steps; step++) {
    const status = actionStatus(pass, layout, step);
    if (status === "failed") return { kind: "transition", to: "aborting", reason: pass.failureReason ?? "fail message lost" };
    if (status !== "succeed") allSucceeded = false;
  }
  if (allSucceeded) return { kind: "transition", to: "succeed" };

  const limit = pass.trans.options.retryLimit;
  const parkedActions = layout.actions.filter((i) => pass.parked.has(i));
  if (limit > 0 && parkedActions.length > 0) {
    if (pass.retryCount >= limit) {
      return { kind: "transition", to: "aborting", reason: `RetryCount is greater than RetryLimit, RetryLimit: ${limit}` };
    }
    return { kind: "invoke", indexes: parkedActions.slice(0, 1), retry: true };
  }

  const runnable: number[] = [];
  for (let step = 0; step < steps; step++) {
    const index = layout.actions[step];
    if (index === undefined || pass.branches[index]?.status !== "prepared") continue;
    if (pass.inFlight.has(index) || pass.parked.has(index)) continue;
    if (prerequisitesMet(pass, layout, step)) runnable.push(index);
  }
  if (runnable.length > 0) return { kind: "invoke", indexes: runnable };
  if (pass.inFlight.size > 0) return { kind: "await" };
  return { kind: "stop", retry: retryKindOf(pass) };
}

/**
 * The steps to compensate: every action that succeeded or failed, plus every still-prepared action
 * that was started in this pass or could have been started (after a crash we cannot know whether
 * its call went out). When an earlier pass may have left results unwritten
 * (`pass.resultsMayBeMissing`), a prepared action's prerequisites may have succeeded unrecorded,
 * so every action could have been started. The failed action is compensated too, as dtm does;
 * the barrier turns each of these into a no-op when the action did nothing.
 */
function stepsToCompensate(pass: Pass, layout: SagaLayout): Set<number> {
  const result = new Set<number>();
  layout.actions.forEach((index, step) => {
    const status = pass.branches[index]?.status;
    if (status === "succeed" || status === "failed") result.add(step);
    else if (pass.resultsMayBeMissing || pass.started.has(index) || prerequisitesMet(pass, layout, step)) result.add(step);
  });
  return result;
}

function decideCompensation(pass: Pass, layout: SagaLayout): Decision {
  if (layout.actions.some((index) => pass.inFlight.has(index))) return { kind: "await" };
  const toCompensate = stepsToCompensate(pass, layout);
  const rolledBack = (step: number): boolean => {
    if (!toCompensate.has(step)) return true;
    const index = layout.compensations[step];
    return index === undefined || pass.branches[index]?.status === "succeed";
  };
  const steps = layout.actions.length;
  const runnable: number[] = [];
  let pending = false;
  for (let step = steps - 1; step >= 0; step--) {
    if (rolledBack(step)) continue;
    pending = true;
    const index = layout.compensations[step];
    if (index === undefined || pass.inFlight.has(index) || pass.parked.has(index)) continue;
    const later = layout.concurrent ? (layout.dependents.get(step) ?? []) : step + 1 < steps ? [step + 1] : [];
    if (later.every(rolledBack)) runnable.push(index);
  }
  if (!pending) return { kind: "transition", to: "failed" };
  if (runnable.length > 0) return { kind: "invoke", indexes: runnable };
  if (pass.inFlight.size > 0) return { kind: "await" };
  return { kind: "stop", retry: retryKindOf(pass) };
}
