/**
 * Prometheus metrics (docs/protocol.md#admin-metrics-and-health): dtm's metric names and labels, so dtm's dashboards and alerts
 * work on dtx unchanged, plus Node's process metrics in place of Go's runtime ones.
 *
 * Each coordinator has a registry of its own (tests run many in one process); the process-wide
 * metrics (CPU, memory, event loop, GC) are collected once per process and served by all.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { BranchCall, BranchInvoker } from "./driver/invoker.ts";
import type { Outcome } from "./core/types.ts";

let processRegistry: Registry | undefined;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Request-duration buckets in seconds: from a cached answer to a slow wait_result. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Age of a transaction at each processing, in seconds: most finish at once, some retry for days. */
const AGE_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600, 21600, 86400, 604800];

export type ApiType = "http" | "grpc";

/** The trans types (validated on every request; mapped anyway, so no label can come from a client). */
const MODELS: ReadonlySet<string> = new Set(["saga", "msg", "tcc", "xa", "workflow"]);
/**
 * The ops the coordinator itself writes (saga, msg, tcc, xa) and its check-back (`msg`). A
 * workflow's ops are names its application chose, so they count as `other`.
 */
const OPS: ReadonlySet<string> = new Set(["action", "compensate", "try", "confirm", "cancel", "commit", "rollback", "msg"]);

function closedLabel(allowed: ReadonlySet<string>, value: string): string {
  return allowed.has(value) ? value : "other";
}

export class CoordinatorMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"type" | "api" | "status">;
  private readonly requestSeconds: Histogram<"type" | "api">;
  private readonly passes: Counter<"model" | "status">;
  private readonly passAge: Histogram<"model">;
  private readonly branchCalls: Counter<"model" | "branchtype" | "status">;
  private readonly retentionRemoved: Counter<"kind">;

  constructor(version: string) {
    const registers = [this.registry];
    // "first": summed over the workers of a cluster it would read N (docs/operations.md#workers).
    new Gauge({ name: "dtm_server_info", help: "The coordinator's version; always 1.", labelNames: ["version"], registers, aggregator: "first" }).set({ version }, 1);
    this.requests = new Counter({ name: "dtm_server_process_total", help: "API requests served, by protocol, API (last path segment) and ok/fail.", labelNames: ["type", "api", "status"], registers });
    this.requestSeconds = new Histogram({ name: "dtm_server_response_duration", help: "Time to answer an API request, in seconds.", labelNames: ["type", "api"], buckets: DURATION_BUCKETS, registers });
    this.passes = new Counter({ name: "dtm_transaction_process_total", help: "Processing passes over a global transaction, by trans type; fail when a branch answered an error or FAILURE, or another writer won.", labelNames: ["model", "status"], registers });
    this.passAge = new Histogram({ name: "dtm_transaction_handled_duration", help: "Age of a global transaction (now - create_time) at each processing pass, in seconds.", labelNames: ["model"], buckets: AGE_BUCKETS, registers });
    this.retentionRemoved = new Counter({ name: "dtx_retention_removed_total", help: "What retention removed (docs/retention.md): kind=trans counts finished transactions deleted with their branches, kind=index Redis id-index entries of transactions that had expired.", labelNames: ["kind"], registers });
    // Both series exist from the start, so a rate() over them is defined before the first deletion.
    this.retentionRemoved.labels({ kind: "trans" }).inc(0);
    this.retentionRemoved.labels({ kind: "index" }).inc(0);
    // dtm also labels by branch id; ids (and workflow ops) are chosen by clients, so each new one
    // would be a series kept for ever. Only closed sets label here (docs/overload.md).
    this.branchCalls = new Counter({ name: "dtm_branch_process_total", help: "Calls to branches (and check-backs), by trans type, op (a closed set, else other) and ok/fail.", labelNames: ["model", "branchtype", "status"], registers });
  }

  /**
   * Children by their label values: prom-client hashes a label object on every call, and these
   * are counted several times per transaction on the hot path.
   */
  private readonly children = new Map<string, { inc(): void } | { observe(v: number): void }>();

  private child<T extends { inc(): void } | { observe(v: number): void }>(key: string, make: () => T): T {
    let c = this.children.get(key);
    if (!c) this.children.set(key, (c = make()));
    return c as T;
  }

  /** An API request was answered; `ok` = HTTP status below 400, or gRPC OK. */
  requestDone(type: ApiType, api: string, ok: boolean, seconds: number): void {
    const status = ok ? "ok" : "fail";
    this.child(`r\0${type}\0${api}\0${status}`, () => this.requests.labels({ type, api, status })).inc();
    this.child(`d\0${type}\0${api}`, () => this.requestSeconds.labels({ type, api })).observe(seconds);
  }

  /** A processing pass ended; `ok` = no branch answered an error or FAILURE and no other writer won. */
  passDone(transType: string, ok: boolean, ageSeconds: number): void {
    const status = ok ? "ok" : "fail";
    const model = closedLabel(MODELS, transType);
    this.child(`p\0${model}\0${status}`, () => this.passes.labels({ model, status })).inc();
    this.child(`a\0${model}`, () => this.passAge.labels({ model })).observe(Math.max(0, ageSeconds));
  }

  /** A branch call ended; `model` and `op` are mapped to closed sets, whatever the client sent. */
  branchCalled(model: string, op: string, ok: boolean): void {
    const status = ok ? "ok" : "fail";
    const m = closedLabel(MODELS, model);
    const branchtype = closedLabel(OPS, op);
    this.child(`b\0${m}\0${branchtype}\0${status}`, () => this.branchCalls.labels({ model: m, branchtype, status })).inc();
  }

  /** A retention batch removed `deleted` transactions (with their branches) and `pruned` Redis index entries. */
  retentionDone(deleted: number, pruned: number): void {
    if (deleted > 0) this.retentionRemoved.labels({ kind: "trans" }).inc(deleted);
    if (pruned > 0) this.retentionRemoved.labels({ kind: "index" }).inc(pruned);
  }

  /** Counts every branch call `inner` makes; a success is ok, anything else (failure too) is fail, as in dtm. */
  meter(inner: BranchInvoker): BranchInvoker {
    return {
      invoke: (call: BranchCall): Promise<Outcome> =>
        inner.invoke(call).then((outcome) => {
          this.branchCalled(call.transType, call.op, outcome.kind === "success");
          return outcome;
        }),
      close: () => inner.close(),
    };
  }

  readonly contentType = this.registry.contentType;

  /** What this process counts: the coordinator's registry and the process-wide one. */
  registries(): Registry[] {
    return [this.registry, processMetrics()];
  }

  private aggregated: (() => Promise<string>) | undefined;

  /**
   * In a cluster worker, a scrape answers with every worker's metrics summed (`source`, from the
   * primary) rather than this process's alone (docs/operations.md#workers).
   */
  aggregateWith(source: () => Promise<string>): void {
    this.aggregated = source;
  }

  /** The exposition text: this coordinator's metrics, then the process's (or the cluster's sum). */
  async text(): Promise<string> {
    if (this.aggregated) return this.aggregated();
    return `${await this.registry.metrics()}\n${await processMetrics().metrics()}`;
  }
}

/** dtm's `api` label: the last path segment, lower-cased (dtm keeps a query string in it; we do not). */
export function apiLabel(path: string): string {
  const clean = path.split("?")[0] ?? "";
  const segments = clean.split("/").filter(Boolean);
  return (segments[segments.length - 1] ?? "").toLowerCase();
}
