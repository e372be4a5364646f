import type { Processor } from "./pass.ts";
import type { TimingConfig } from "./retry.ts";
import { sagaProcessor } from "./saga.ts";
import type { TransType } from "./types.ts";

/** One processor per transaction type, in a typed record (no side-effect registration). */
export function createProcessors(timing: TimingConfig): Partial<Record<TransType, Processor>> {
  return {
    saga: sagaProcessor(timing),
  };
}
