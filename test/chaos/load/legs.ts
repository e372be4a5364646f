import { accountDb } from "../contracts.ts";
import type { BranchPayload } from "../participant/routes.ts";
import { branchUrls } from "../participant/routes.ts";
import type { CoordinatorFlowContext } from "./flow-context.ts";
import type { Leg } from "./plan.ts";

/** The participant URLs and body of one leg (a debit or a credit of one account), per mode. */
export interface LegCall {
  readonly payload: BranchPayload;
  readonly saga: { readonly action: string; readonly compensate: string };
  readonly tcc: { readonly try: string; readonly confirm: string; readonly cancel: string };
  /** The XA branch URL (action and phase 2); only for PostgreSQL and MariaDB accounts. */
  readonly xa: string;
  /** The msg branch URL (a credit). */
  readonly msgCredit: string;
}

/** What participant `base` is called with for `leg` (test/chaos/participant/routes.ts has the table). */
export function legCall(base: string, leg: Leg): LegCall {
  const urls = branchUrls(base);
  const payload: BranchPayload = { account: leg.account, amount: Math.abs(leg.delta), peer: leg.peer };
  const db = accountDb(leg.account);
  const xa = db === "redis" ? "" : leg.delta < 0 ? urls.xa[db].transOut : urls.xa[db].transIn;
  if (leg.delta < 0) {
    return {
      payload,
      saga: { action: urls.saga.transOut, compensate: urls.saga.transOutCompensate },
      tcc: { try: urls.tcc.transOutTry, confirm: urls.tcc.transOutConfirm, cancel: urls.tcc.transOutCancel },
      xa,
      msgCredit: "",
    };
  }
  return {
    payload,
    saga: { action: urls.saga.transIn, compensate: urls.saga.transInCompensate },
    tcc: { try: urls.tcc.transInTry, confirm: urls.tcc.transInConfirm, cancel: urls.tcc.transInCancel },
    xa,
    msgCredit: urls.msg.transIn,
  };
}

/** The msg check-back URL for a sender whose local transaction ran on `account`'s database. */
export function queryPreparedFor(base: string, account: number): string {
  return branchUrls(base).queryPrepared(accountDb(account));
}

/**
 * The body of a TCC or XA global transaction: `branch` for each leg of the plan, in order (the
 * debit, then the credit), given the SDK's builder and the leg's URLs.
 */
export function forEachLeg<B>(ctx: CoordinatorFlowContext, branch: (builder: B, call: LegCall) => Promise<unknown>): (builder: B) => Promise<void> {
  return async (builder) => {
    for (const leg of ctx.plan.legs) await branch(builder, legCall(ctx.participant, leg));
  };
}
