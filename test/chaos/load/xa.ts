import { xaGlobalTransaction } from "../../../sdk/src/index.ts";
import type { CoordinatorFlowContext } from "./flow-context.ts";
import { legCall } from "./legs.ts";

/**
 * An XA transfer between two SQL accounts (PostgreSQL or MariaDB): prepare, the participant runs
 * and prepares each local XA transaction and registers its branch, submit (the coordinator
 * commits both). A branch that fails (low balance, a fault) makes the SDK abort: the coordinator
 * rolls back every prepared branch.
 */
export async function runXa(ctx: CoordinatorFlowContext): Promise<void> {
  await xaGlobalTransaction(
    ctx.client,
    ctx.plan.intent.gid,
    async (xa) => {
      for (const leg of ctx.plan.legs) {
        const call = legCall(ctx.participant, leg);
        await xa.callBranch(call.payload, call.xa);
      }
    },
    ctx.options,
  );
}
