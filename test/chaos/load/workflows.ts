import type { BranchInfo, DtxClient, WorkflowContext, WorkflowRegistry } from "../../../sdk/src/index.ts";
import { requestBranch } from "../../../sdk/src/index.ts";
import type { FlowContext } from "./flow-context.ts";
import { legCall } from "./legs.ts";
import type { Leg, WorkflowStyle } from "./plan.ts";
import type { SenderDbs } from "./sender-dbs.ts";

/** The one workflow the load runs, registered on every registry. */
export const MIXED_WORKFLOW = "chaos-mixed";

/** The workflow's input (stored by the coordinator, replayed on resume). */
export interface MixedWorkflowInput {
  /** The participant's base URL. */
  readonly participant: string;
  readonly legs: ReadonlyArray<Leg & { readonly style: WorkflowStyle }>;
}

/** A phase-2 callback: POST the participant's compensate / confirm / cancel URL with the branch's identity. */
function phase2Call(client: DtxClient, url: string, payload: object, timeoutMs: number) {
  return async (branch: BranchInfo): Promise<void> => {
    await requestBranch(client, {
      url,
      method: "POST",
      payload,
      params: { gid: branch.gid, trans_type: branch.transType, branch_id: branch.branchId, op: branch.op },
      timeoutMs,
    });
  };
}

/**
 * One branch per leg, in the style the plan chose: saga (`callHttp` of the action, `onRollback`
 * the compensation), TCC (`callHttp` of the Try, `onCommit` Confirm, `onRollback` Cancel) or XA
 * (`doXa` on the account's database, phase 2 by the workflow). A FAILURE (low balance) rolls back
 * the branches before it, last first.
 */
async function mixedWorkflow(wf: WorkflowContext, client: DtxClient, sender: SenderDbs, timeoutMs: number): Promise<void> {
  const input = wf.json<MixedWorkflowInput>();
  for (const leg of input.legs) {
    const call = legCall(input.participant, leg);
    switch (leg.style) {
      case "saga":
        wf.newBranch().onRollback(phase2Call(client, call.saga.compensate, call.payload, timeoutMs));
        await wf.callHttp(call.saga.action, { body: call.payload });
        break;
      case "tcc":
        wf.newBranch()
          .onCommit(phase2Call(client, call.tcc.confirm, call.payload, timeoutMs))
          .onRollback(phase2Call(client, call.tcc.cancel, call.payload, timeoutMs));
        await wf.callHttp(call.tcc.try, { body: call.payload });
        break;
      case "xa":
        await sender.doXa(wf, { account: leg.account, balance: leg.delta, requireFunds: leg.delta < 0 });
        break;
    }
  }
}

/** Registers {@link MIXED_WORKFLOW} on `registry` (whose client runs its steps). */
export function registerMixedWorkflow(registry: WorkflowRegistry, sender: SenderDbs, timeoutMs: number): void {
  // compensateErrorBranch: a step's earlier attempt may still be running when a retry of it answers
  // FAILURE (the first call outlived its timeout, the retry found too little money), and it may then
  // apply. Compensating the failed branch too undoes that late effect, or (through the barrier's
  // null compensation) stops it from applying. Without it, full profile seed 1 (postgres, mysql):
  // workflow c1-7392 failed with its branch 02 applied and never undone (G3, G4).
  registry.register(MIXED_WORKFLOW, (wf) => mixedWorkflow(wf, registry.options.client, sender, timeoutMs), { compensateErrorBranch: true });
}

/** Executes the transaction's workflow; the coordinator resumes it through the generator's callback when it stops unfinished. */
export async function runWorkflow(ctx: FlowContext): Promise<void> {
  const input: MixedWorkflowInput = {
    participant: ctx.participant,
    legs: ctx.plan.legs.map((leg, i) => ({ ...leg, style: ctx.plan.styles[i] ?? "saga" })),
  };
  await ctx.workflows.execute(MIXED_WORKFLOW, ctx.plan.intent.gid, input);
}
