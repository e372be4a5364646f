import type { Tcc } from "../../../sdk/src/index.ts";
import { tccGlobalTransaction } from "../../../sdk/src/index.ts";
import type { CoordinatorFlowContext } from "./flow-context.ts";
import { forEachLeg } from "./legs.ts";

/**
 * A TCC transfer: prepare, register and Try the debit then the credit, submit. A Try that answers
 * FAILURE (low balance), errors or times out makes the SDK abort the global (its branches are
 * cancelled) and the error propagates; a Try left hanging by a timeout is the anti-hanging case.
 */
export async function runTcc(ctx: CoordinatorFlowContext): Promise<void> {
  const tryEach = forEachLeg<Tcc>(ctx, (tcc, call) => tcc.callBranch(call.payload, call.tcc.try, call.tcc.confirm, call.tcc.cancel));
  await tccGlobalTransaction(ctx.client, ctx.plan.intent.gid, tryEach, ctx.options);
}
