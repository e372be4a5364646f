/**
 * A scripted workflow client for end-to-end tests: a test double of dtm's Go `workflow` package
 * speaking the HTTP protocol of docs/protocol.md#workflow, not a full SDK.
 *
 * `execute(name, gid, data, fn)`:
 * 1. POST /api/dtmsvr/prepareWorkflow (query_prepared = the resume callback URL, custom_data
 *    `{"name","data": <base64>}`); a workflow already succeed / failed returns its stored outcome
 *    without running anything;
 * 2. runs `fn`; each `wf.branch(op, url, body)` replays the recorded progress `<branch_id>-<op>`,
 *    or calls the participant (query gid, trans_type=workflow, branch_id, op) and records its
 *    SUCCESS / FAILURE with registerBranch; ONGOING and errors are not recorded;
 * 3. phase 2: on success the `onCommit` callbacks, on FAILURE the `onRollback` callbacks (the
 *    failed branch's own rollback skipped unless `compensateErrorBranch`), in reverse order, each
 *    recorded too;
 * 4. submits `req_extra {status, rollback_reason, result}`. ONGOING or any error leaves the
 *    workflow prepared for the coordinator's cron to call back.
 */
import { request } from "undici";

export type WorkflowFinalStatus = "succeed" | "failed";

/** What `execute` ended with: a final status, or `prepared` when it stopped on ONGOING / an error. */
export type WorkflowOutcome =
  | { status: "succeed"; result: string }
  | { status: "failed"; reason: string }
  | { status: "prepared"; error: string; ongoing: boolean };

/** A branch answered FAILURE (now or in a recorded progress): the workflow rolls back. */
export class WorkflowFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WorkflowFailure";
  }
}

/** A branch answered ONGOING: nothing is recorded and the workflow stays prepared. */
export class WorkflowOngoing extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WorkflowOngoing";
  }
}

/** What a workflow function sees. */
export interface WorkflowContext {
  readonly gid: string;
  readonly name: string;
  /** The workflow input. */
  readonly data: string;
  /** Starts the next branch (`01`, `02`, ...) and returns its id. */
  newBranch(): string;
  /**
   * One recorded call of the current branch (branch `01` is started if none is): returns the
   * participant's answer body, replayed from the progress when recorded; throws
   * {@link WorkflowFailure} on FAILURE, {@link WorkflowOngoing} on ONGOING, an Error otherwise.
   */
  branch(op: string, url: string, body?: string): Promise<string>;
  /** A phase-2 call of the current branch run when the workflow succeeds (op `commit` unless told). */
  onCommit(url: string, body?: string, op?: string): void;
  /** A phase-2 call of the current branch run when the workflow fails (op `rollback` unless told). */
  onRollback(url: string, body?: string, op?: string): void;
}

/** The user's workflow; its return value is the workflow result. */
export type WorkflowFunction = (wf: WorkflowContext) => Promise<string | void>;

export interface WorkflowClientOptions {
  /** Also run the rollback of the branch whose call failed (Go `CompensateErrorBranch`). */
  compensateErrorBranch?: boolean;
}

/** A progress row as prepareWorkflow returns it. */
export interface WireProgress {
  branch_id: string;
  op: string;
  status: string;
  bin_data?: string;
  [key: string]: unknown;
}

export interface PrepareWorkflowReply {
  progresses: WireProgress[];
  transaction: { gid: string; status: string; result?: string; rollback_reason?: string; [key: string]: unknown };
}

type CallResult = { kind: "success"; body: string } | { kind: "failure"; message: string } | { kind: "ongoing"; message: string } | { kind: "error"; message: string };

interface Phase2 {
  branchId: string;
  op: string;
  url: string;
  body: string;
}

const b64 = (text: string): string => Buffer.from(text, "utf8").toString("base64");
const unb64 = (text: string | undefined): string => Buffer.from(text ?? "", "base64").toString("utf8");

async function postJson(url: string, body: unknown): Promise<{ status: number; text: string }> {
  const res = await request(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.statusCode, text: await res.body.text() };
}

/** dtm's HTTPResp2DtmError (docs/protocol.md#http-branch-calls), as the Go SDK applies it to a participant's answer. */
function classify(status: number, text: string): CallResult {
  if (status === 425 || text.includes("ONGOING")) return { kind: "ongoing", message: text || "ONGOING" };
  if (status === 409 || text.includes("FAILURE")) return { kind: "failure", message: text || "FAILURE" };
  if (status !== 200) return { kind: "error", message: `http status ${status}: ${text}` };
  return { kind: "success", body: text };
}

export class WorkflowClient {
  /**
   * @param dtmUrl the coordinator, e.g. `http://127.0.0.1:36789`
   * @param callbackUrl where the coordinator calls back to resume a prepared workflow (query_prepared)
   */
  constructor(
    readonly dtmUrl: string,
    readonly callbackUrl: string,
    private readonly options: WorkflowClientOptions = {},
  ) {}

  async prepare(name: string, gid: string, data: string): Promise<PrepareWorkflowReply> {
    const r = await postJson(`${this.dtmUrl}/api/dtmsvr/prepareWorkflow`, {
      gid,
      trans_type: "workflow",
      protocol: "http",
      query_prepared: this.callbackUrl,
      custom_data: JSON.stringify({ name, data: data === "" ? null : b64(data) }),
    });
    if (r.status !== 200) throw new Error(`prepareWorkflow ${gid}: ${r.status} ${r.text}`);
    return JSON.parse(r.text) as PrepareWorkflowReply;
  }

  async execute(name: string, gid: string, data: string, fn: WorkflowFunction): Promise<WorkflowOutcome> {
    let prepared: PrepareWorkflowReply;
    try {
      prepared = await this.prepare(name, gid, data);
    } catch (error) {
      return { status: "prepared", error: messageOf(error), ongoing: false };
    }
    const stored = prepared.transaction;
    if (stored.status === "succeed") return { status: "succeed", result: unb64(stored.result) };
    if (stored.status === "failed") return { status: "failed", reason: stored.rollback_reason ?? "" };

    const run = new Run(this.dtmUrl, gid, name, data, prepared.progresses);
    let result: string;
    try {
      result = (await fn(run.context)) ?? "";
    } catch (error) {
      if (!(error instanceof WorkflowFailure)) return { status: "prepared", error: messageOf(error), ongoing: error instanceof WorkflowOngoing };
      try {
        await run.phase2(run.rollbacks.filter((r) => this.options.compensateErrorBranch === true || r.branchId !== run.failedBranch));
        await this.submit(gid, { status: "failed", rollback_reason: error.message });
      } catch (phase2Error) {
        return { status: "prepared", error: messageOf(phase2Error), ongoing: phase2Error instanceof WorkflowOngoing };
      }
      return { status: "failed", reason: error.message };
    }
    try {
      await run.phase2(run.commits);
      await this.submit(gid, { status: "succeed", result: b64(result) });
    } catch (error) {
      return { status: "prepared", error: messageOf(error), ongoing: error instanceof WorkflowOngoing };
    }
    return { status: "succeed", result };
  }

  /** Go's `ExecuteByQS`: re-runs the workflow the coordinator called back for (op = name, body = input). */
  executeByQS(query: Record<string, string>, body: string, fn: WorkflowFunction): Promise<WorkflowOutcome> {
    const name = query["op"];
    const gid = query["gid"];
    if (!name || !gid) throw new Error(`not a workflow callback: ${JSON.stringify(query)}`);
    return this.execute(name, gid, body, fn);
  }

  private async submit(gid: string, reqExtra: Record<string, string>): Promise<void> {
    const r = await postJson(`${this.dtmUrl}/api/dtmsvr/submit`, { gid, trans_type: "workflow", req_extra: reqExtra });
    if (r.status !== 200) throw new Error(`submit workflow ${gid}: ${r.status} ${r.text}`);
  }
}

/** One execution of a workflow function. */
class Run {
  readonly commits: Phase2[] = [];
  readonly rollbacks: Phase2[] = [];
  failedBranch: string | undefined;
  private branchNo = 0;
  private readonly progress = new Map<string, { status: string; data: string }>();
  readonly context: WorkflowContext;

  constructor(
    private readonly dtmUrl: string,
    private readonly gid: string,
    name: string,
    data: string,
    progresses: readonly WireProgress[],
  ) {
    for (const p of progresses) {
      if (p.status === "succeed" || p.status === "failed") this.progress.set(`${p.branch_id}-${p.op}`, { status: p.status, data: unb64(p.bin_data) });
    }
    const current = (): string => (this.branchNo === 0 ? this.nextBranch() : this.branchId());
    this.context = {
      gid,
      name,
      data,
      newBranch: () => this.nextBranch(),
      branch: async (op, url, body = "") => {
        const branchId = current();
        try {
          return await this.recorded(branchId, op, url, body);
        } catch (error) {
          if (error instanceof WorkflowFailure) this.failedBranch = branchId;
          throw error;
        }
      },
      onCommit: (url, body = "", op = "commit") => {
        this.commits.push({ branchId: current(), op, url, body });
      },
      onRollback: (url, body = "", op = "rollback") => {
        this.rollbacks.push({ branchId: current(), op, url, body });
      },
    };
  }

  /** Runs phase-2 calls in reverse registration order; a FAILURE there is an error (Go panics). */
  async phase2(calls: readonly Phase2[]): Promise<void> {
    for (const c of [...calls].reverse()) {
      try {
        await this.recorded(c.branchId, c.op, c.url, c.body);
      } catch (error) {
        if (error instanceof WorkflowFailure) throw new Error(`phase-2 ${c.branchId}-${c.op} answered FAILURE: ${error.message}`);
        throw error;
      }
    }
  }

  private branchId(): string {
    return String(this.branchNo).padStart(2, "0");
  }

  private nextBranch(): string {
    this.branchNo += 1;
    return this.branchId();
  }

  private async recorded(branchId: string, op: string, url: string, body: string): Promise<string> {
    const replay = this.progress.get(`${branchId}-${op}`);
    if (replay) {
      if (replay.status === "failed") throw new WorkflowFailure(replay.data);
      return replay.data;
    }
    const outcome = await this.callParticipant(branchId, op, url, body);
    if (outcome.kind === "ongoing") throw new WorkflowOngoing(outcome.message);
    if (outcome.kind === "error") throw new Error(outcome.message);
    const status = outcome.kind === "success" ? "succeed" : "failed";
    const data = outcome.kind === "success" ? outcome.body : outcome.message;
    const r = await postJson(`${this.dtmUrl}/api/dtmsvr/registerBranch`, { gid: this.gid, trans_type: "workflow", branch_id: branchId, op, status, data });
    if (r.status !== 200) throw new Error(`registerBranch ${branchId}-${op}: ${r.status} ${r.text}`);
    this.progress.set(`${branchId}-${op}`, { status, data });
    if (outcome.kind === "failure") throw new WorkflowFailure(outcome.message);
    return outcome.body;
  }

  private async callParticipant(branchId: string, op: string, url: string, body: string): Promise<CallResult> {
    const target = new URL(url);
    for (const [k, v] of Object.entries({ gid: this.gid, trans_type: "workflow", branch_id: branchId, op })) target.searchParams.set(k, v);
    try {
      const res = await request(target, { method: "POST", headers: { "content-type": "application/json" }, body });
      return classify(res.statusCode, await res.body.text());
    } catch (error) {
      return { kind: "error", message: `POST ${url}: ${messageOf(error)}` };
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
