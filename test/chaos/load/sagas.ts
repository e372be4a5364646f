import { Saga, isFailure, isOngoing } from "../../../sdk/src/index.ts";
import type { CoordinatorFlowContext } from "./flow-context.ts";
import { legCall } from "./legs.ts";
import type { Leg } from "./plan.ts";

function buildSaga(ctx: CoordinatorFlowContext, legs: readonly Leg[]): Saga {
  const saga = new Saga(ctx.client, ctx.plan.intent.gid, ctx.options);
  for (const leg of legs) {
    const call = legCall(ctx.participant, leg);
    saga.add(call.saga.action, call.saga.compensate, call.payload);
  }
  if (ctx.plan.intent.kind === "saga-dag") {
    // Each transfer's credit waits for its own debit; the transfers run side by side.
    saga.enableConcurrent();
    for (let step = 1; step < legs.length; step += 2) saga.addBranchOrder(step, [step - 1]);
  }
  return saga;
}

/**
 * A saga (kind `saga`: one transfer, debit then credit) or a concurrent DAG (kind `saga-dag`:
 * 2–3 transfers in parallel, each credit after its debit). A debit of a low-balance account
 * answers FAILURE and the saga compensates. With `conflict`, once an answer said the saga is
 * stored, the same gid is submitted again with every amount + 1: the coordinator must refuse it
 * (409, the saga has finished) or ignore its branches (a resubmit continues the stored ones,
 * docs/deviations.md D2).
 */
export async function runSaga(ctx: CoordinatorFlowContext): Promise<void> {
  // Only once the coordinator has the saga: a conflicting body for a gid it never stored would be
  // a new saga with other amounts than the intent's (seed 1, gid c1-285, found it).
  let stored = false;
  try {
    await buildSaga(ctx, ctx.plan.legs).submit();
    stored = true;
  } catch (err) {
    // FAILURE (ended failed, or a re-send met the finished saga) and ONGOING both say it is stored.
    stored = isFailure(err) || isOngoing(err);
    throw err;
  } finally {
    if (ctx.plan.intent.conflict && stored) {
      const changed = ctx.plan.legs.map((leg) => ({ ...leg, delta: leg.delta < 0 ? leg.delta - 1 : leg.delta + 1 }));
      await buildSaga(ctx, changed)
        .submit()
        .catch(() => undefined);
    }
  }
}
