import type { Decision, Pass, Processor } from "./pass.ts";
import { retryKindOf } from "./pass.ts";
import type { TimingConfig } from "./retry.ts";
import { isTimedOut, timeoutReason } from "./retry.ts";

interface PhaseTwoShape {
  /** The op to run when submitted, and when aborting. */
  commitOp: string;
  rollbackOp: string;
  /** TCC walks the branches in reverse store order, XA forward (docs/protocol.md#tcc and docs/protocol.md#xa). */
  reverse: boolean;
}

/**
 * TCC and XA share one shape: while prepared nothing happens until a timeout turns the trans to
 * aborting; once submitted every `commitOp` branch is called, once aborting every `rollbackOp`
 * branch, one at a time, stopping at the first that does not succeed. A FAILURE from Confirm,
 * Cancel, Commit or Rollback is retried like any error: those ops must eventually succeed.
 */
function phaseTwoProcessor(shape: PhaseTwoShape, cfg: TimingConfig): Processor {
  return {
    decide(pass: Pass, now: number): Decision {
      const status = pass.trans.status;
      if (status === "prepared") {
        return isTimedOut(pass.trans, now, cfg) ? { kind: "transition", to: "aborting", reason: timeoutReason(pass.trans, cfg) } : { kind: "done" };
      }
      if (status !== "submitted" && status !== "aborting") return { kind: "done" };
      const op = status === "submitted" ? shape.commitOp : shape.rollbackOp;
      const order = pass.branches.map((_, i) => i);
      if (shape.reverse) order.reverse();
      const next = order.find((i) => pass.branches[i]?.op === op && pass.branches[i]?.status !== "succeed");
      if (next === undefined) return { kind: "transition", to: status === "submitted" ? "succeed" : "failed" };
      if (pass.inFlight.has(next)) return { kind: "await" };
      if (pass.parked.has(next)) return { kind: "stop", retry: retryKindOf(pass) };
      return { kind: "invoke", indexes: [next] };
    },
    failureIsTerminal: () => false,
  };
}

export function tccProcessor(cfg: TimingConfig): Processor {
  return phaseTwoProcessor({ commitOp: "confirm", rollbackOp: "cancel", reverse: true }, cfg);
}

export function xaProcessor(cfg: TimingConfig): Processor {
  return phaseTwoProcessor({ commitOp: "commit", rollbackOp: "rollback", reverse: false }, cfg);
}
