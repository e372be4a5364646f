import type { DtxClient, TransOptions, WorkflowRegistry } from "../../../sdk/src/index.ts";
import type { TxPlan } from "./plan.ts";
import type { SenderDbs } from "./sender-dbs.ts";

/** What one transaction's flow works with; the generator builds one per transaction. */
export interface FlowContext extends CoordinatorFlowContext {
  /** The sender's own databases: the msg sender's local transaction and the workflows' XA steps. */
  readonly sender: SenderDbs;
  /** The workflow registry of the plan's coordinator and transport. */
  readonly workflows: WorkflowRegistry;
}

/** The part of a {@link FlowContext} that the flows talking only to the coordinator and the participant need (saga, TCC, XA). */
export interface CoordinatorFlowContext {
  readonly plan: TxPlan;
  /** The SDK client of the plan's coordinator and transport; every request it makes is recorded. */
  readonly client: DtxClient;
  /** The base URL of the plan's participant. */
  readonly participant: string;
  /** The transaction's options (`wait_result` as planned). */
  readonly options: TransOptions;
}
