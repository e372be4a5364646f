import type { BranchResponse } from "../branch-call.ts";
import { branchResponse, branchTimeoutMs, requestBranch } from "../branch-call.ts";
import type { DtxClient } from "../client.ts";
import { DtxError, DtxFailure, invalidArgument, isFailure, messageOf } from "../errors.ts";
import { payloadBytes } from "../payload.ts";
import type { WorkflowProgress } from "../transport/transport.ts";
import type { BranchInfo, Payload, TransOptions } from "../types.ts";
import type { XaConnection, XaOptions } from "../xa-local.ts";
import { prepareLocal, xaId, xaPhase2, xaPrepared } from "../xa-local.ts";

/** A phase-2 callback: a workflow branch's rollback or commit. It must eventually succeed (be idempotent; retried on resume). */
export type WorkflowPhase2 = (branch: BranchInfo) => Promise<void> | void;

/** Options of {@link WorkflowContext.callHttp}. */
export interface WorkflowHttpInit {
  /** Default POST. */
  readonly method?: string;
  /** The request body (a string as is, bytes raw, anything else as JSON); none when undefined. */
  readonly body?: Payload;
  /** Extra headers (the workflow's branch headers are sent too). */
  readonly headers?: Record<string, string>;
}

/**
 * What a workflow function sees (dtm's `workflow.Workflow`, docs/protocol.md#workflow). Each step
 * ({@link do}, {@link callHttp}, {@link callGrpc}) runs in a branch (`01`, `02`, ...) and is
 * recorded with the coordinator; when the workflow is executed again (a resume after a crash or
 * an ONGOING answer) recorded steps are replayed, not re-run. The code must therefore be
 * deterministic: the same steps in the same order.
 *
 * Branches: {@link newBranch} starts one; the first step, or a `onRollback`/`onCommit` before any
 * branch, starts `01`; a second step in the same branch starts the next branch by itself.
 */
export interface WorkflowContext {
  /** The global id. */
  readonly gid: string;
  /** The workflow name. */
  readonly name: string;
  /** The workflow's input bytes. */
  readonly data: Buffer;
  /** The input as UTF-8 text. */
  text(): string;
  /** The input parsed as JSON. */
  json<T = unknown>(): T;
  /** The current branch id ("" before the first). */
  readonly branchId: string;
  /** Starts the next branch. */
  newBranch(): this;
  /**
   * Registers the current branch's compensation, run (in reverse branch order, recorded as op
   * `rollback`) when the workflow fails with FAILURE. The branch whose step failed is not
   * compensated unless `compensateErrorBranch` is set. One per branch. The callback makes plain
   * calls (it may not run workflow steps) and must be idempotent: it runs again if the workflow
   * is resumed before its completion was recorded.
   */
  onRollback(fn: WorkflowPhase2): this;
  /** Registers the current branch's commit, run (in reverse order, op `commit`) when the workflow succeeds. One per branch. */
  onCommit(fn: WorkflowPhase2): this;
  /**
   * A local step: runs `fn` once and records its result (SUCCESS) or its {@link DtxFailure}
   * message (FAILURE). Any other error is not recorded: the workflow stops and is resumed later.
   * Resolves with the result bytes.
   */
  do(fn: (branch: BranchInfo) => Promise<Payload | void> | Payload | void): Promise<Buffer>;
  /**
   * An HTTP call to a participant, with query `gid`, `trans_type=workflow`, `branch_id`, `op=action`:
   * 200 is recorded and returned; 409 / FAILURE is recorded and thrown as {@link DtxFailure};
   * 425 / ONGOING and errors are thrown without recording.
   */
  callHttp(url: string, init?: WorkflowHttpInit): Promise<BranchResponse>;
  /** A gRPC call (`host:port/package.Service/Method`, raw request bytes) with `dtm-*` metadata; recorded like {@link callHttp}. Resolves with the response bytes. */
  callGrpc(url: string, request: Payload): Promise<Buffer>;
  /**
   * A local XA step in a branch of its own (Go `DoXa`): runs `fn` in an XA transaction (xid
   * `gid-branch_id`) on a session from `sessions.open()` and prepares it; the branch then commits
   * it when the workflow succeeds and rolls it back when it fails, each on a fresh session.
   * A {@link DtxFailure} from `fn` rolls the local transaction back and fails the workflow.
   *
   * ```ts
   * await wf.doXa(
   *   { open: async () => mysqlXa(await mysql.createConnection(url)), close: (c) => c.end() },
   *   async (conn) => { await conn.query("update stock set qty = qty - 1 where sku = ?", [sku]); },
   * );
   * ```
   */
  doXa<C>(sessions: XaSessions<C>, fn: (conn: C, branch: BranchInfo) => Promise<Payload | void>, options?: Pick<XaOptions, "barrierTable">): Promise<Buffer>;
}

/** Where {@link WorkflowContext.doXa} gets its database sessions: one per use, closed after it. */
export interface XaSessions<C> {
  /** A new session, wrapped with `mysqlXa` or `postgresXa`. */
  open(): Promise<XaConnection<C>>;
  /** Closes a session from {@link open} (for MySQL, a prepared XA transaction is handed over only when its session closes). */
  close(conn: C): Promise<void>;
}

interface Phase2Item {
  readonly branchId: string;
  readonly fn: WorkflowPhase2;
}

interface Recorded {
  status: string;
  data: Uint8Array;
}

/** Turns a FAILURE from the coordinator's bookkeeping into an ordinary (retryable) error: only business steps decide FAILURE. */
function asBookkeepingError(err: unknown, what: string): unknown {
  if (!isFailure(err)) return err;
  const e = err as Partial<DtxError>;
  return new DtxError(e.grpcCode !== undefined ? "GRPC_ERROR" : "HTTP_ERROR", `${what}: ${messageOf(err)}`, {
    cause: err,
    ...(e.httpStatus !== undefined ? { httpStatus: e.httpStatus } : {}),
    ...(e.grpcCode !== undefined ? { grpcCode: e.grpcCode } : {}),
    ...(e.serverCode !== undefined ? { serverCode: e.serverCode } : {}),
  });
}

/** One execution of a workflow function: the context it sees, the recorded progress, and phase 2. */
export class WorkflowRun implements WorkflowContext {
  readonly #client: DtxClient;
  readonly #options: TransOptions;
  readonly #progress = new Map<string, Recorded>();
  readonly #rollbacks: Phase2Item[] = [];
  readonly #commits: Phase2Item[] = [];
  #branchNo = 0;
  #actionTaken = false;
  #rollbackAdded = false;
  #commitAdded = false;
  #inPhase2 = false;
  /** The branch whose step failed with FAILURE, if any. */
  failedBranch: string | undefined;

  /**
   * @param client the coordinator connection
   * @param gid the global id
   * @param name the workflow name
   * @param data the input
   * @param progresses what prepareWorkflow returned
   * @param options branch headers and request timeout of steps
   */
  constructor(client: DtxClient, readonly gid: string, readonly name: string, readonly data: Buffer, progresses: readonly WorkflowProgress[], options: TransOptions) {
    this.#client = client;
    this.#options = options;
    for (const p of progresses) {
      if (p.status === "succeed" || p.status === "failed") this.#progress.set(`${p.branchId}-${p.op}`, { status: p.status, data: p.data });
    }
  }

  get branchId(): string {
    return this.#branchNo === 0 ? "" : String(this.#branchNo).padStart(2, "0");
  }

  text(): string {
    return this.data.toString("utf8");
  }

  json<T = unknown>(): T {
    try {
      return JSON.parse(this.text()) as T;
    } catch (err) {
      throw invalidArgument(`the input of workflow ${this.name} is not JSON: ${messageOf(err)}`);
    }
  }

  newBranch(): this {
    if (this.#branchNo >= 99) throw invalidArgument("a workflow can have at most 99 branches");
    this.#branchNo += 1;
    this.#actionTaken = false;
    this.#rollbackAdded = false;
    this.#commitAdded = false;
    return this;
  }

  onRollback(fn: WorkflowPhase2): this {
    if (this.#branchNo === 0) this.newBranch();
    if (this.#rollbackAdded) throw invalidArgument(`branch ${this.branchId} already has an onRollback; call newBranch() first`);
    this.#rollbackAdded = true;
    this.#rollbacks.push({ branchId: this.branchId, fn });
    return this;
  }

  onCommit(fn: WorkflowPhase2): this {
    if (this.#branchNo === 0) this.newBranch();
    if (this.#commitAdded) throw invalidArgument(`branch ${this.branchId} already has an onCommit; call newBranch() first`);
    this.#commitAdded = true;
    this.#commits.push({ branchId: this.branchId, fn });
    return this;
  }

  async do(fn: (branch: BranchInfo) => Promise<Payload | void> | Payload | void): Promise<Buffer> {
    const branchId = this.#actionBranch();
    const data = await this.#step(branchId, async () => {
      const value = await fn(this.#info(branchId, "action"));
      return value === undefined ? new Uint8Array(0) : payloadBytes(value);
    });
    return Buffer.from(data);
  }

  async callHttp(url: string, init: WorkflowHttpInit = {}): Promise<BranchResponse> {
    const branchId = this.#actionBranch();
    const data = await this.#step(branchId, async () => {
      const res = await requestBranch(this.#client, {
        url,
        method: init.method ?? "POST",
        ...(init.body !== undefined ? { payload: init.body } : {}),
        params: { gid: this.gid, trans_type: "workflow", branch_id: branchId, op: "action" },
        headers: { ...(this.#options.branchHeaders ?? {}), ...(init.headers ?? {}) },
        timeoutMs: branchTimeoutMs(this.#client, this.#options.requestTimeout),
      });
      return res.body;
    });
    return branchResponse(200, data);
  }

  async callGrpc(url: string, request: Payload): Promise<Buffer> {
    const branchId = this.#actionBranch();
    const data = await this.#step(branchId, async () => {
      const res = await requestBranch(this.#client, {
        url,
        payload: request,
        params: { gid: this.gid, trans_type: "workflow", branch_id: branchId, op: "action", dtm: this.#client.server },
        headers: this.#options.branchHeaders ?? {},
        timeoutMs: branchTimeoutMs(this.#client, this.#options.requestTimeout),
      });
      return res.body;
    });
    return Buffer.from(data);
  }

  async doXa<C>(sessions: XaSessions<C>, fn: (conn: C, branch: BranchInfo) => Promise<Payload | void>, options: Pick<XaOptions, "barrierTable"> = {}): Promise<Buffer> {
    if (this.#branchNo === 0 || this.#actionTaken || this.#rollbackAdded || this.#commitAdded) this.newBranch();
    const phase2 = async (branch: BranchInfo): Promise<void> => {
      const conn = await sessions.open();
      try {
        await xaPhase2(branch, conn, options);
      } finally {
        await sessions.close(conn.raw);
      }
    };
    this.onCommit(phase2).onRollback(phase2);
    return this.do(async (branch) => {
      const conn = await sessions.open();
      try {
        const session = { dialect: conn.dialect, raw: conn.raw, exec: (sql: string, params?: readonly unknown[]) => conn.exec(sql, params) };
        // An earlier execution prepared this step and stopped before recording it (a store outage
        // on registerBranch, a crash): its work waits in the prepared transaction, which no new
        // attempt can get past (the xid and the barrier row are taken). Adopt it: the step is
        // done, and the phase 2 callbacks above commit or roll it back. Its result bytes are lost.
        if (await xaPrepared(session, xaId(branch.gid, branch.branchId, conn.dialect))) return undefined;
        // The session is closed by sessions.close below (which hands a MySQL prepared XA over), not by endSession.
        return await prepareLocal(session, branch, options, (raw) => fn(raw, branch));
      } finally {
        await sessions.close(conn.raw);
      }
    });
  }

  /** Runs the commits, last branch first. */
  commit(): Promise<void> {
    return this.#phase2(this.#commits, "commit");
  }

  /** Runs the rollbacks, last branch first, skipping the failed branch's own unless `compensateErrorBranch`. */
  rollback(compensateErrorBranch: boolean): Promise<void> {
    return this.#phase2(
      this.#rollbacks.filter((r) => compensateErrorBranch || r.branchId !== this.failedBranch),
      "rollback",
    );
  }

  async #phase2(items: readonly Phase2Item[], op: "commit" | "rollback"): Promise<void> {
    this.#inPhase2 = true;
    for (const item of [...items].reverse()) {
      await this.#recorded(item.branchId, op, async () => {
        try {
          await item.fn(this.#info(item.branchId, op));
        } catch (err) {
          if (isFailure(err)) {
            throw new DtxError("INVALID_ARGUMENT", `the ${op} of workflow branch ${item.branchId} answered FAILURE; phase-2 callbacks must eventually succeed (${messageOf(err)})`, { cause: err });
          }
          throw err;
        }
        return new Uint8Array(0);
      });
    }
  }

  #actionBranch(): string {
    if (this.#inPhase2) throw invalidArgument("a workflow step (do, callHttp, callGrpc) cannot run inside an onRollback/onCommit callback");
    if (this.#branchNo === 0 || this.#actionTaken) this.newBranch();
    this.#actionTaken = true;
    return this.branchId;
  }

  #info(branchId: string, op: string): BranchInfo {
    return { transType: "workflow", gid: this.gid, branchId, op };
  }

  /** A business step (op `action`): remembers which branch failed. */
  async #step(branchId: string, exec: () => Promise<Uint8Array>): Promise<Uint8Array> {
    try {
      return await this.#recorded(branchId, "action", exec);
    } catch (err) {
      if (isFailure(err)) this.failedBranch = branchId;
      throw err;
    }
  }

  /**
   * Replays `branchId-op` when recorded; otherwise runs `exec` and records SUCCESS (its bytes)
   * or FAILURE (the error's message). Other errors are not recorded.
   */
  async #recorded(branchId: string, op: string, exec: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const key = `${branchId}-${op}`;
    const replay = this.#progress.get(key);
    if (replay) {
      if (replay.status === "failed") throw new DtxFailure(Buffer.from(replay.data).toString("utf8") || "FAILURE");
      return replay.data;
    }
    let data: Uint8Array;
    try {
      data = await exec();
    } catch (err) {
      if (!isFailure(err)) throw err;
      const message = messageOf(err) || "FAILURE";
      await this.#register(branchId, op, "failed", new TextEncoder().encode(message));
      throw err instanceof DtxFailure ? err : new DtxFailure(message, { cause: err });
    }
    await this.#register(branchId, op, "succeed", data);
    return data;
  }

  async #register(branchId: string, op: string, status: "succeed" | "failed", data: Uint8Array): Promise<void> {
    try {
      await this.#client.transport.registerBranch({ gid: this.gid, transType: "workflow", branchId, data, extra: { op, status } });
    } catch (err) {
      throw asBookkeepingError(err, `recording workflow step ${branchId}-${op}`);
    }
    this.#progress.set(`${branchId}-${op}`, { status, data });
  }
}
