import type { BranchRegistration, GlobalRequest, QueryReply, Transport, WorkflowPrepareReply } from "../../../sdk/src/index.ts";
import { DtxError } from "../../../sdk/src/index.ts";
import type { ClientOp, Via } from "../contracts.ts";
import { pause, untilAborted } from "./abort.ts";
import type { Completion, Journal } from "./journal.ts";
import { classifyError, isUnknown } from "./outcome.ts";

/** Re-sends of one request after an unknown outcome (so at most 4 sends). */
export const MAX_RESENDS = 3;
/** Pause before re-send k (1-based): 250 ms, 500 ms, 1 s. */
export const RESEND_DELAYS_MS: readonly number[] = [250, 500, 1000];

/** One coordinator a {@link RecordingTransport} can send to. */
export interface Route {
  /** The coordinator's index in LoadOptions.coordinators (recorded in each invoke). */
  readonly coordinator: number;
  /** The SDK transport to it (HTTP or gRPC, the same for every route). */
  readonly transport: Transport;
  /** Its HTTP transport, for `query` over gRPC (dtm has no gRPC query). */
  readonly query?: Transport;
}

/** Options of {@link RecordingTransport}. */
export interface RecordingTransportOptions {
  readonly journal: Journal;
  readonly via: Via;
  /** Ends every wait early: a pending request is completed as `info` and not re-sent. */
  readonly signal?: AbortSignal;
  /** Gids whose submits are sent twice, concurrently, with the same body (deliberate duplicates). */
  readonly duplicates?: ReadonlySet<string>;
}

/**
 * A {@link Transport} that sends through the SDK's own HTTP or gRPC transport and records every
 * request to the coordinator in the history: an invoke, then exactly one of ok / fail / info
 * (outcome.ts). A request whose outcome is unknown is sent again, the same request by gid (the
 * coordinator is idempotent per gid), up to {@link MAX_RESENDS} times, as a careful SDK user would;
 * each send is its own invoke with `attempt` 1..4. Send k goes to route (k - 1) mod routes: the
 * first to the transaction's own coordinator, a re-send to the next one, as a client behind a load
 * balancer would (the coordinators share the store, so a re-send to another one is the same
 * request by gid). The SDK's builders (Saga, Msg, Tcc, Xa, Workflow) use it through a
 * `DtxClient({ transport })`, so every request they make is recorded.
 */
export class RecordingTransport implements Transport {
  readonly protocol: "http" | "grpc";
  readonly server: string;

  /**
   * @param routes the transaction's own coordinator first (its address is the `dtm` participants are given), then the others
   * @param options the journal, the transport's name, the stop signal and the duplicated gids
   */
  constructor(readonly routes: readonly Route[], readonly options: RecordingTransportOptions) {
    const home = routes[0];
    if (!home) throw new Error("a RecordingTransport needs at least one route");
    this.protocol = home.transport.protocol;
    this.server = home.transport.server;
  }

  newGid(): Promise<string> {
    return this.routes[0]!.transport.newGid();
  }

  async prepare(request: GlobalRequest): Promise<void> {
    await this.#send(request.gid, "prepare", (t) => t.prepare(request), () => "prepared");
  }

  async submit(request: GlobalRequest): Promise<void> {
    const send = (): Promise<void> => this.#send(request.gid, "submit", (t) => t.submit(request), () => submittedStatus(request));
    if (!this.options.duplicates?.has(request.gid)) return send();
    // The deliberate duplicate: a second identical submit in flight at the same time. The flow
    // goes on with the first copy's answer; the second is only recorded.
    const [first] = await Promise.allSettled([send(), send()]);
    if (first.status === "rejected") throw first.reason;
  }

  async abort(request: GlobalRequest): Promise<void> {
    await this.#send(request.gid, "abort", (t) => t.abort(request), () => (request.options?.waitResult ? "failed" : "aborting"));
  }

  async registerBranch(request: BranchRegistration): Promise<void> {
    await this.#send(request.gid, "registerBranch", (t) => t.registerBranch(request), () => "prepared");
  }

  prepareWorkflow(request: GlobalRequest): Promise<WorkflowPrepareReply> {
    return this.#send(request.gid, "prepareWorkflow", (t) => t.prepareWorkflow(request), (reply) => reply.transaction.status);
  }

  query(gid: string): Promise<QueryReply> {
    const query = (_transport: Transport, route: Route): Promise<QueryReply> => {
      const q = route.query ?? route.transport;
      if (!q.query) return Promise.reject(new DtxError("UNSUPPORTED", "query needs the coordinator's HTTP API"));
      return q.query(gid);
    };
    return this.#send(gid, "query", query, (reply) => reply.transaction?.status ?? "absent");
  }

  /** The routes' transports belong to the generator, which closes them. */
  async close(): Promise<void> {}

  async #send<T>(gid: string, op: ClientOp, call: (transport: Transport, route: Route) => Promise<T>, statusOf: (value: T) => string): Promise<T> {
    const { journal, via, signal } = this.options;
    for (let attempt = 1; ; attempt++) {
      const route = this.routes[(attempt - 1) % this.routes.length]!;
      const request = journal.invoke(gid, op, via, route.coordinator, attempt);
      let completion: Completion;
      try {
        const value = await untilAborted(() => call(route.transport, route), signal);
        request.complete({ type: "ok", status: statusOf(value) });
        return value;
      } catch (err) {
        completion = classifyError(err, { op, attempt });
        request.complete(completion);
        if (!isUnknown(completion) || attempt > MAX_RESENDS || signal?.aborted) throw err;
      }
      await pause(RESEND_DELAYS_MS[attempt - 1] ?? 1000, signal);
    }
  }
}

/** What an acknowledged submit says about its transaction. */
function submittedStatus(request: GlobalRequest): string {
  // A workflow's submit records its end, as the request says.
  const recorded = request.reqExtra?.["status"];
  if (request.transType === "workflow" && recorded) return recorded;
  return request.options?.waitResult ? "succeed" : "submitted";
}
