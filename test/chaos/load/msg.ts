import { Msg, msgBarrierInfo } from "../../../sdk/src/index.ts";
import type { FlowContext } from "./flow-context.ts";
import { legCall, queryPreparedFor } from "./legs.ts";

/**
 * A two-phase message: the sender's local transaction debits the source account (PostgreSQL or
 * MariaDB) with its effect row and the msg barrier row, and the coordinator delivers the credit.
 * Normally through the SDK's `doAndSubmitDB` (prepare, local transaction, submit; a FAILURE, low
 * balance, aborts). With `senderVanishes` the sender prepares, commits its local transaction and
 * never submits, as if killed between the two: the coordinator must ask the check-back
 * (QueryPrepared), find the barrier row and deliver the credit.
 */
export async function runMsg(ctx: FlowContext): Promise<void> {
  const { intent } = ctx.plan;
  const [debit, credit] = ctx.plan.legs;
  if (!debit || !credit) throw new Error(`msg ${intent.gid} needs one transfer`);
  const call = legCall(ctx.participant, credit);
  const msg = new Msg(ctx.client, intent.gid, ctx.options).add(call.msgCredit, call.payload);
  const queryPrepared = queryPreparedFor(ctx.participant, debit.account);
  const local = ctx.sender.msgDb({ account: debit.account, balance: debit.delta, requireFunds: true });
  if (!intent.senderVanishes) {
    await msg.doAndSubmitDB(queryPrepared, local, async () => undefined);
    return;
  }
  await msg.prepare(queryPrepared);
  await local.callMsgBarrier(msgBarrierInfo(intent.gid), async () => undefined);
  // The sender is gone: no submit, no abort.
}
