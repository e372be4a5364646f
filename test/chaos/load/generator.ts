/**
 * The chaos harness's load generator (docs/chaos.md): a seeded mix of sagas, concurrent saga
 * DAGs, TCC, msg, XA and workflows, submitted at concurrency C over HTTP and gRPC with the SDK,
 * each request recorded in the run's history (contracts ClientEvent) and each transaction's
 * intent written before its first request.
 */
import { setMaxListeners } from "node:events";
import type { WorkflowRegistry } from "../../../sdk/src/index.ts";
import { DtxClient, GrpcTransport, HttpTransport, WorkflowRegistry as Registry } from "../../../sdk/src/index.ts";
import type { Kind, RunPaths, Via } from "../contracts.ts";
import type { DbUrls } from "../participant/db-urls.ts";
import type { FlowContext } from "./flow-context.ts";
import { pause } from "./abort.ts";
import { Journal } from "./journal.ts";
import { runMsg } from "./msg.ts";
import { DEFAULT_MIX, RATES, planTransaction } from "./plan.ts";
import type { PlanContext, Rates } from "./plan.ts";
import { RecordingTransport } from "./recording-transport.ts";
import type { Route } from "./recording-transport.ts";
import { runSaga } from "./sagas.ts";
import { SenderDbs } from "./sender-dbs.ts";
import { runTcc } from "./tcc.ts";
import { WorkflowHost } from "./workflow-host.ts";
import { registerMixedWorkflow, runWorkflow } from "./workflows.ts";
import { runXa } from "./xa.ts";

export interface LoadOptions {
  seed: number;
  /** Transactions to run (gids `c<seed>-0` .. `c<seed>-<count-1>`). */
  count: number;
  /** Transactions in flight at most (C; the profiles use 32). */
  concurrency: number;
  coordinators: Array<{ httpUrl: string; grpcTarget: string }>;
  /** The participants' base URLs, `http://127.0.0.1:<port>`. */
  participants: string[];
  dbs: DbUrls;
  paths: RunPaths;
  /** Weights per kind (default {@link DEFAULT_MIX}); a kind left out keeps its default weight, 0 turns it off. */
  mix?: Partial<Record<Kind, number>>;
  /** Rates inside the mix (default plan.ts RATES); e.g. a short test raises the duplicate rate. */
  rates?: Partial<Rates>;
  /** Stops the load early: no new transaction starts, pending requests complete as `info`. */
  signal?: AbortSignal;
  /** Timeout of each request to a coordinator, in ms (default 10 000). */
  requestTimeoutMs?: number;
  /** Timeout of the SDK's own calls to participants (TCC Try, XA action, workflow steps), in ms (default 3 000). */
  branchTimeoutMs?: number;
  /** Upper bound of the whole load, in ms (default max(120 s, 250 ms per transaction)); then it stops as on `signal`. */
  maxRunMs?: number;
  /**
   * Offered load: transaction n starts no earlier than n / ratePerSecond seconds after the start
   * (an open-loop schedule, still at most `concurrency` in flight). Default: none, each worker
   * starts its next transaction as soon as its last one ended (closed loop).
   */
  ratePerSecond?: number;
}

export interface LoadResult {
  /** Gids with at least one request sent. */
  invoked: number;
  /** Gids whose submit the coordinator acknowledged (an `ok` of a submit; the checker's G1 definition). */
  acknowledged: number;
  /** Gids the coordinator confirmed storing: an `ok` of any request but a query (prepare, registerBranch, abort...). */
  stored: number;
  /** Transactions whose flow ran to its end (successfully or not) before runLoad resolved. */
  finished: number;
  /**
   * Closes the workflow callback endpoint, the clients and the history files. Call it once the run
   * is checked: until then the endpoint lets coordinators resume unfinished workflows (quiesce).
   */
  stop(): Promise<void>;
}

/** How long runLoad waits, after a stop, for the flows still running (each one is bounded anyway). */
export const STOP_GRACE_MS = 5_000;

type Flow = (ctx: FlowContext) => Promise<void>;
const FLOWS: Record<Kind, Flow> = { saga: runSaga, "saga-dag": runSaga, tcc: runTcc, msg: runMsg, xa: runXa, workflow: runWorkflow };

/** The SDK clients of the transactions whose own coordinator is this one (re-sends go to the others in turn): for the flows (stopped with the run) and for the workflow registries (kept until stop()). */
interface Endpoint {
  readonly load: Record<Via, DtxClient>;
  readonly workflows: Record<Via, WorkflowRegistry>;
}

function anySignal(signals: Array<AbortSignal | undefined>): AbortSignal {
  const signal = AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
  // Every pending request and pause listens to it: up to C of each, not a leak.
  setMaxListeners(0, signal);
  return signal;
}

/**
 * Runs the load and resolves when every transaction has run, or after the run was stopped
 * (`signal`, `maxRunMs`). Never rejects for a transaction's error: those are outcomes, in the
 * history. See {@link LoadResult.stop}.
 */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  if (opts.coordinators.length === 0 || opts.participants.length === 0) throw new Error("runLoad needs at least one coordinator and one participant");
  const requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
  const branchTimeoutMs = opts.branchTimeoutMs ?? 3_000;
  const maxRunMs = opts.maxRunMs ?? Math.max(120_000, opts.count * 250);
  const runTimer = AbortSignal.timeout(maxRunMs);
  const runSignal = anySignal([opts.signal, runTimer]);
  const stopController = new AbortController();
  setMaxListeners(0, stopController.signal);
  const journal = new Journal(opts.paths);
  const sender = new SenderDbs(opts.dbs, Math.max(4, Math.ceil(opts.concurrency / 4)));
  const host = new WorkflowHost();
  const duplicates = new Set<string>();

  // One HTTP and one gRPC transport per coordinator, shared by every client.
  const links = opts.coordinators.map((c) => ({
    http: new HttpTransport(c.httpUrl, { timeoutMs: requestTimeoutMs }),
    grpc: new GrpcTransport(c.grpcTarget, { timeoutMs: requestTimeoutMs }),
  }));
  const endpoints: Endpoint[] = [];
  const stop = once(async () => {
    stopController.abort(new Error("the load was stopped"));
    await host.close().catch(() => undefined);
    await Promise.allSettled(links.flatMap((l) => [l.http.close(), l.grpc.close()]));
    await sender.close();
    journal.close();
  });
  try {
    await host.start();
    for (let home = 0; home < links.length; home++) {
      // Coordinator `home` first, then the others in turn, for re-sends.
      const routes = (via: Via): Route[] =>
        links.map((_, k) => {
          const coordinator = (home + k) % links.length;
          return { coordinator, transport: links[coordinator]![via], query: links[coordinator]!.http };
        });
      const client = (via: Via, signal: AbortSignal): DtxClient =>
        new DtxClient({ transport: new RecordingTransport(routes(via), { journal, via, signal, duplicates }), branchTimeoutMs });
      const registry = (via: Via): WorkflowRegistry => {
        const name = `${home}-${via}`;
        const r = new Registry({ client: client(via, stopController.signal), callbackUrl: host.callbackUrl(name) });
        registerMixedWorkflow(r, sender, branchTimeoutMs);
        host.add(name, r);
        return r;
      };
      endpoints.push({
        load: { http: client("http", runSignal), grpc: client("grpc", runSignal) },
        workflows: { http: registry("http"), grpc: registry("grpc") },
      });
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const planCtx: PlanContext = {
    seed: opts.seed,
    mix: { ...DEFAULT_MIX, ...opts.mix },
    coordinators: opts.coordinators.length,
    participants: opts.participants.length,
    rates: { ...RATES, ...opts.rates },
  };
  let next = 0;
  let finished = 0;
  const startedAt = Date.now();
  const worker = async (): Promise<void> => {
    for (let n = next++; n < opts.count && !runSignal.aborted; n = next++) {
      if (opts.ratePerSecond) {
        const due = startedAt + (n * 1000) / opts.ratePerSecond - Date.now();
        if (due > 0 && !(await pause(due, runSignal).then(() => true, () => false))) return;
      }
      const plan = planTransaction(planCtx, n);
      const { gid, via } = plan.intent;
      const endpoint = endpoints[plan.coordinator]!;
      journal.intent(plan.intent);
      if (plan.intent.duplicate) duplicates.add(gid);
      try {
        await FLOWS[plan.intent.kind]({
          plan,
          client: endpoint.load[via],
          participant: opts.participants[plan.participant]!,
          options: { waitResult: plan.waitResult },
          sender,
          workflows: endpoint.workflows[via],
        });
      } catch {
        // An outcome, already in the history (FAILURE, unknown, refused...).
      } finally {
        duplicates.delete(gid);
        finished++;
      }
    }
  };
  const workers = Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  const stopped = new Promise<void>((resolve) => {
    if (runSignal.aborted) resolve();
    runSignal.addEventListener("abort", () => resolve(), { once: true });
  }).then(() => new Promise<void>((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref()));
  await Promise.race([workers, stopped]);
  return { invoked: journal.gidsInvoked, acknowledged: journal.gidsAcknowledged, stored: journal.gidsStored, finished, stop };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}
