/**
 * The participant's call log: contracts `ParticipantCall` lines, one JSON line per append to the
 * run's calls file (shared by every participant process; O_APPEND keeps lines whole).
 */
import { appendFileSync } from "node:fs";
import type { BranchFault, ParticipantCall } from "../contracts.ts";

type CallResult = Extract<ParticipantCall, { type: "end" }>["result"];

/** The dtm result word of an HTTP status the participant answered with. */
export function resultOf(status: number): CallResult {
  if (status === 200) return "SUCCESS";
  if (status === 409) return "FAILURE";
  if (status === 425) return "ONGOING";
  return "ERROR";
}

/** Appends one process's calls to the calls file; callIds are `<pid>-<n>`, unique per process. */
export class CallLog {
  #next = 0;

  constructor(
    readonly file: string,
    readonly pid: number = process.pid,
  ) {}

  /** Writes the `start` line of a call; returns its callId. */
  start(call: { gid: string; branchId: string; op: string; path: string }): string {
    this.#next += 1;
    const callId = `${this.pid}-${this.#next}`;
    this.#write({ type: "start", callId, pid: this.pid, at: Date.now(), ...call });
    return callId;
  }

  /** Writes the `end` line of a call. */
  end(callId: string, result: CallResult, fault?: BranchFault, extra: { duplicated?: boolean } = {}): void {
    this.#write({ type: "end", callId, pid: this.pid, at: Date.now(), result, ...(fault ? { fault } : {}), ...extra });
  }

  #write(line: ParticipantCall & { duplicated?: boolean }): void {
    appendFileSync(this.file, `${JSON.stringify(line)}\n`);
  }
}
