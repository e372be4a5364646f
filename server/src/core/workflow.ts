import type { Decision, Pass, Processor } from "./pass.ts";

export interface WorkflowCustomData {
  name: string;
  data: Uint8Array;
}

/** Reads `{"name": ..., "data": <base64 or null>}` from a workflow's custom_data. */
export function workflowCustomData(customData: string): WorkflowCustomData {
  try {
    const parsed: unknown = JSON.parse(customData || "{}");
    const o = parsed !== null && typeof parsed === "object" ? (parsed as Record<string, unknown>) : {};
    const name = typeof o["name"] === "string" ? o["name"] : "";
    const data = typeof o["data"] === "string" ? Buffer.from(o["data"], "base64") : new Uint8Array(0);
    return { name, data };
  } catch {
    return { name: "", data: new Uint8Array(0) };
  }
}

/**
 * Workflow, server side (docs/protocol.md#workflow): the application drives it. While it is prepared, each
 * cron claim calls the application back (`query_prepared`, op = workflow name, body = input) so it
 * re-runs the workflow and replays the recorded branches; the answer is only logged, and the next
 * resume comes after one retry interval.
 */
export function workflowProcessor(): Processor {
  return {
    decide(pass: Pass): Decision {
      if (pass.trans.status !== "prepared") return { kind: "done" };
      if (pass.checkBack === undefined) {
        const { name, data } = workflowCustomData(pass.trans.customData);
        return { kind: "checkBack", op: name, body: data };
      }
      return { kind: "stop", retry: "reset" };
    },
    failureIsTerminal: () => false,
  };
}
