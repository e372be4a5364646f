import { msgProcessor } from "./msg.ts";
import type { Processor } from "./pass.ts";
import { tccProcessor, xaProcessor } from "./phase-two.ts";
import type { TimingConfig } from "./retry.ts";
import { sagaProcessor } from "./saga.ts";
import type { TransType } from "./types.ts";
import { workflowProcessor } from "./workflow.ts";

/** One processor per transaction type, in a typed record (no side-effect registration). */
export function createProcessors(timing: TimingConfig): Record<TransType, Processor> {
  return {
    saga: sagaProcessor(timing),
    msg: msgProcessor(timing),
    tcc: tccProcessor(timing),
    xa: xaProcessor(timing),
    workflow: workflowProcessor(),
  };
}
