import type { Decision, Pass, Processor } from "./pass.ts";
import { retryKindOf } from "./pass.ts";
import { describeValue } from "./echo.ts";
import type { TimingConfig } from "./retry.ts";
import { clampNumber, MAX_MSG_DELAY_SECONDS } from "./time-limits.ts";
import { isTimedOut } from "./retry.ts";

/** The numeric `delay` values of a msg's custom_data (the key is matched case-insensitively, as dtm does). */
function delayValues(customData: string): number[] {
  if (!customData) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(customData);
  } catch {
    return [];
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return [];
  return Object.entries(parsed as Record<string, unknown>)
    .filter((e): e is [string, number] => e[0].toLowerCase() === "delay" && typeof e[1] === "number")
    .map((e) => e[1]);
}

/**
 * The `delay` of a msg's custom_data in ms. A stored value outside the range a request may set
 * (written before it was checked) is clamped to it, so the next cron time is always a real date.
 */
export function msgDelay(customData: string): number {
  const value = delayValues(customData).find((v) => v > 0);
  return value === undefined ? 0 : Math.round(clampNumber(value, 0, MAX_MSG_DELAY_SECONDS) * 1000);
}

/** Why a request's msg `delay` is refused, or undefined when it is absent or in range. */
export function msgDelayProblem(customData: string): string | undefined {
  const bad = delayValues(customData).find((v) => !(v >= 0 && v <= MAX_MSG_DELAY_SECONDS));
  return bad === undefined ? undefined : `custom_data.delay must be a number of seconds between 0 and ${MAX_MSG_DELAY_SECONDS}; got ${describeValue(bad)}`;
}

const EMPTY = new Uint8Array(0);

/**
 * Two-phase message (docs/protocol.md#msg). A prepared msg whose sender went quiet past its timeout is
 * checked back through `query_prepared`: SUCCESS submits it, FAILURE fails it, anything else waits.
 * A submitted msg calls every branch (in order, or all at once when `concurrent`) until each has
 * succeeded; it never rolls back.
 */
export function msgProcessor(cfg: TimingConfig): Processor {
  return {
    decide(pass: Pass, now: number): Decision {
      if (pass.trans.status === "prepared") return decidePrepared(pass, now, cfg);
      if (pass.trans.status !== "submitted") return { kind: "done" };
      const delay = msgDelay(pass.trans.customData);
      if (delay > 0 && now < pass.trans.createTime + delay) return { kind: "stop", retry: "keep", at: pass.trans.createTime + delay };
      const pending = pass.branches.map((b, i) => (b.op === "action" && b.status !== "succeed" ? i : -1)).filter((i) => i >= 0);
      if (pending.length === 0) return { kind: "transition", to: "succeed" };
      const startable = pending.filter((i) => !pass.inFlight.has(i) && !pass.parked.has(i));
      if (pass.trans.options.concurrent) {
        if (startable.length > 0) return { kind: "invoke", indexes: startable };
        return pass.inFlight.size > 0 ? { kind: "await" } : { kind: "stop", retry: retryKindOf(pass) };
      }
      const first = pending[0]!;
      if (pass.inFlight.has(first)) return { kind: "await" };
      if (pass.parked.has(first)) return { kind: "stop", retry: retryKindOf(pass) };
      return { kind: "invoke", indexes: [first] };
    },
    failureIsTerminal: () => false,
  };
}

function decidePrepared(pass: Pass, now: number, cfg: TimingConfig): Decision {
  if (!isTimedOut(pass.trans, now, cfg)) return { kind: "done" };
  const answer = pass.checkBack;
  if (answer === undefined) return { kind: "checkBack", op: "msg", body: EMPTY };
  if (answer.kind === "success") return { kind: "transition", to: "submitted" };
  if (answer.kind === "failure") return { kind: "transition", to: "failed", reason: `query_prepared answered FAILURE: ${answer.message}` };
  return { kind: "stop", retry: answer.kind === "ongoing" ? "reset" : "backoff" };
}
