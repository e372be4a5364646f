import type { XaGlobal } from "../../../sdk/src/index.ts";
import { xaGlobalTransaction } from "../../../sdk/src/index.ts";
import type { CoordinatorFlowContext } from "./flow-context.ts";
import { forEachLeg } from "./legs.ts";

/**
 * An XA transfer between two SQL accounts (PostgreSQL or MariaDB): prepare, the participant runs
 * and prepares each local XA transaction and registers its branch, submit (the coordinator
 * commits both). A branch that fails (low balance, a fault) makes the SDK abort: the coordinator
 * rolls back every prepared branch.
 */
export async function runXa(ctx: CoordinatorFlowContext): Promise<void> {
  const prepareEach = forEachLeg<XaGlobal>(ctx, (xa, call) => xa.callBranch(call.payload, call.xa));
  await xaGlobalTransaction(ctx.client, ctx.plan.intent.gid, prepareEach, ctx.options);
}
