import type { DtxClient } from "../client.ts";
import { DtxError, DtxFailure, invalidArgument, isFailure, messageOf } from "../errors.ts";
import type { QueryLike } from "../handlers/common.ts";
import { payloadBytes } from "../payload.ts";
import type { GlobalRequest } from "../transport/transport.ts";
import type { Payload, TransOptions } from "../types.ts";
import type { WorkflowContext } from "./context.ts";
import { WorkflowRun } from "./context.ts";
import type { WorkflowGrpcService } from "./grpc-service.ts";
import { workflowGrpcService } from "./grpc-service.ts";

/** A workflow: a deterministic function of its input, made of recorded steps (see {@link WorkflowContext}). Its value is the workflow's result. */
export type WorkflowFunction = (wf: WorkflowContext) => Promise<Payload | void>;

/** Options of {@link WorkflowRegistry.register}. */
export interface WorkflowRegisterOptions {
  /** Also run the rollback of the branch whose step failed (Go `CompensateErrorBranch`). */
  readonly compensateErrorBranch?: boolean;
  /**
   * Options sent with prepareWorkflow: `retryInterval` sets how often the coordinator resumes a
   * stopped workflow; `branchHeaders` and `requestTimeout` also apply to `callHttp`/`callGrpc`.
   */
  readonly options?: Pick<TransOptions, "retryInterval" | "requestTimeout" | "branchHeaders">;
}

/** Where the workflows of a {@link WorkflowRegistry} run. */
export interface WorkflowRegistryOptions {
  /** The coordinator connection (HTTP or gRPC). */
  readonly client: DtxClient;
  /**
   * Where the coordinator calls back to resume a stopped workflow (`query_prepared`): an HTTP URL
   * served with {@link WorkflowRegistry.handleResume} (register GET and POST), or a gRPC target
   * `host:port/workflow.Workflow/Execute` served with {@link WorkflowRegistry.grpcService}.
   */
  readonly callbackUrl: string;
}

interface Entry {
  readonly fn: WorkflowFunction;
  readonly options: WorkflowRegisterOptions;
}

/** The input bytes of a resume request body, as a framework may have parsed it. */
function bodyBytes(body: unknown): Buffer {
  if (body === undefined || body === null || body === "") return Buffer.alloc(0);
  if (typeof body === "string") return Buffer.from(body, "utf8");
  if (body instanceof Uint8Array) return Buffer.from(body);
  return Buffer.from(JSON.stringify(body), "utf8");
}

/** The input stored in a workflow's custom_data `{"name","data":<base64>}`, when present. */
function storedInput(customData: string): Buffer | undefined {
  if (!customData) return undefined;
  try {
    const o = JSON.parse(customData) as { data?: unknown };
    return typeof o.data === "string" ? Buffer.from(o.data, "base64") : o.data === null ? Buffer.alloc(0) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Workflows by name, executed against one coordinator (dtm's `workflow` package, docs/protocol.md#workflow).
 * {@link Workflow} is a process-wide instance with static methods.
 *
 * `execute` prepares the workflow (or loads its recorded progress), runs the function, then
 * phase 2 (commits on success; rollbacks on FAILURE), and records the outcome with submit.
 * ONGOING or any other error leaves it prepared: the coordinator calls `callbackUrl` back
 * (every retry interval) and {@link handleResume} executes it again, replaying the recorded steps.
 */
export class WorkflowRegistry {
  readonly #entries = new Map<string, Entry>();

  /** @param options the coordinator and the resume callback URL */
  constructor(readonly options: WorkflowRegistryOptions) {
    if (!options.callbackUrl) throw invalidArgument("a workflow registry needs a callbackUrl for the coordinator to resume workflows");
  }

  /** Registers a workflow under `name` (INVALID_ARGUMENT when the name is taken). */
  register(name: string, fn: WorkflowFunction, options: WorkflowRegisterOptions = {}): void {
    if (!name) throw invalidArgument("a workflow needs a name");
    if (this.#entries.has(name)) throw invalidArgument(`a workflow named ${name} is already registered`);
    this.#entries.set(name, { fn, options });
  }

  /** Whether a workflow of that name is registered. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /**
   * Executes workflow `name` as transaction `gid` with `data` as input, and resolves with its
   * result bytes. A workflow that already finished is not run again: its stored result is returned
   * (empty over gRPC), or its rollback reason thrown as {@link DtxFailure}. Throws
   * {@link DtxFailure} when the workflow failed (after its rollbacks ran), and any other error
   * (ONGOING included) when it stopped unfinished; the coordinator then resumes it.
   */
  async execute(name: string, gid: string, data: Payload = ""): Promise<Buffer> {
    const entry = this.#entries.get(name);
    if (!entry) throw new DtxError("NOT_FOUND", `no workflow named ${name} is registered`);
    if (!gid) throw invalidArgument("execute needs a gid");
    const { client, callbackUrl } = this.options;
    const input = Buffer.from(payloadBytes(data));
    const transOptions: TransOptions = { ...(entry.options.options ?? {}) };
    const base = { gid, transType: "workflow" as const, options: transOptions, ...(client.protocol === "http" ? { protocol: "http" } : {}) };
    const prepared = await client.transport.prepareWorkflow({
      ...base,
      queryPrepared: callbackUrl,
      customData: JSON.stringify({ name, data: input.length > 0 ? input.toString("base64") : null }),
    });
    const stored = prepared.transaction;
    if (stored.status === "succeed") return Buffer.from(stored.result, "base64");
    if (stored.status === "failed") throw new DtxFailure(stored.rollbackReason || "FAILURE");

    const run = new WorkflowRun(client, gid, name, storedInput(stored.customData) ?? input, prepared.progresses, transOptions);
    let result: Buffer;
    try {
      const value = await entry.fn(run);
      result = value === undefined ? Buffer.alloc(0) : Buffer.from(payloadBytes(value));
    } catch (err) {
      if (!isFailure(err)) throw err;
      const reason = messageOf(err) || "FAILURE";
      await run.rollback(entry.options.compensateErrorBranch ?? false);
      await this.#submit(base, { status: "failed", rollback_reason: reason.slice(0, 1024), result: "" });
      throw err instanceof DtxFailure ? err : new DtxFailure(reason, { cause: err });
    }
    await run.commit();
    await this.#submit(base, { status: "succeed", rollback_reason: "", result: result.toString("base64") });
    return result;
  }

  /**
   * The HTTP resume callback (Go `ExecuteByQS`): the coordinator calls `callbackUrl` with query
   * `gid`, `op` = the workflow name, and the input as body (GET when empty). Executes the workflow
   * again; wrap it with a handler helper so errors become 409/425/500.
   *
   * ```ts
   * app.route({ method: ["GET", "POST"], url: "/workflow/resume",
   *   handler: fastifyHandler((req: FastifyRequest) => Workflow.handleResume(req.query as Record<string, string>, req.body)) });
   * ```
   *
   * @param query the request's query (or URL)
   * @param body the request body: raw bytes or text; a framework-parsed JSON value is re-serialized (over HTTP the coordinator's stored input is used anyway)
   */
  async handleResume(query: QueryLike | string, body?: unknown): Promise<void> {
    const q = typeof query === "string" ? new URL(query, "http://localhost").searchParams : query;
    const get = (k: string): string => {
      const v: unknown = q instanceof URLSearchParams ? q.get(k) : q[k];
      const first = Array.isArray(v) ? (v as unknown[])[0] : v;
      return typeof first === "string" ? first : "";
    };
    const name = get("op");
    const gid = get("gid");
    if (!name || !gid) throw invalidArgument("a workflow resume request needs query gid and op (the workflow name)");
    await this.execute(name, gid, bodyBytes(body));
  }

  /**
   * The gRPC resume callback: `workflow.Workflow/Execute` (docs/protocol.md#grpc-api) as a grpc-js service
   * definition and implementation, for `server.addService(svc.definition, svc.implementation)`.
   * The workflow name and gid come from metadata `dtm-op` and `dtm-gid`.
   */
  grpcService(): WorkflowGrpcService {
    return workflowGrpcService((name, gid, data) => this.execute(name, gid, data).then(() => undefined));
  }

  async #submit(base: Omit<GlobalRequest, "reqExtra">, reqExtra: Record<string, string>): Promise<void> {
    await this.options.client.transport.submit({ ...base, reqExtra });
  }
}

let defaultRegistry: WorkflowRegistry | undefined;

function current(): WorkflowRegistry {
  if (!defaultRegistry) throw invalidArgument("call Workflow.init({ client, callbackUrl }) before using Workflow");
  return defaultRegistry;
}

/**
 * The process-wide workflow registry, with dtm's `workflow` package API:
 *
 * ```ts
 * Workflow.init({ client, callbackUrl: "http://my-app:8080/workflow/resume" });
 * Workflow.register("transfer", async (wf) => {
 *   const { amount } = wf.json<{ amount: number }>();
 *   wf.newBranch().onRollback(async () => { await refund(amount) });
 *   await wf.callHttp(`${busi}/TransOut`, { body: { amount } });
 *   await wf.callHttp(`${busi}/TransIn`, { body: { amount } });
 * });
 * await Workflow.execute("transfer", gid, { amount: 30 });
 * ```
 */
export class Workflow {
  private constructor() {}

  /** Sets the coordinator and callback of the process-wide registry (replacing a previous one) and returns it. */
  static init(options: WorkflowRegistryOptions): WorkflowRegistry {
    defaultRegistry = new WorkflowRegistry(options);
    return defaultRegistry;
  }

  /** The process-wide registry (INVALID_ARGUMENT before {@link init}). */
  static get registry(): WorkflowRegistry {
    return current();
  }

  /** {@link WorkflowRegistry.register} on the process-wide registry. */
  static register(name: string, fn: WorkflowFunction, options: WorkflowRegisterOptions = {}): void {
    current().register(name, fn, options);
  }

  /** {@link WorkflowRegistry.execute} on the process-wide registry. */
  static execute(name: string, gid: string, data: Payload = ""): Promise<Buffer> {
    return current().execute(name, gid, data);
  }

  /** {@link WorkflowRegistry.handleResume} on the process-wide registry. */
  static handleResume(query: QueryLike | string, body?: unknown): Promise<void> {
    return current().handleResume(query, body);
  }

  /** {@link WorkflowRegistry.grpcService} of the process-wide registry. */
  static grpcService(): WorkflowGrpcService {
    return current().grpcService();
  }
}
