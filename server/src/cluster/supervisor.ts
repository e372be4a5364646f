/**
 * The primary of a multi-process coordinator (docs/operations.md#workers). It forks `workers`
 * copies of the coordinator, each a full one on the shared store (API, cron, retention; the
 * claim fencing of docs/fencing.md makes their recovery loops safe side by side), and only
 * supervises: it accepts on the shared ports and hands each connection to a worker (node:cluster's
 * round-robin), restarts a worker that died after a capped backoff, stops them all on SIGTERM,
 * and sums their metrics for a scrape.
 */
import cluster from "node:cluster";
import type { Worker } from "node:cluster";
import { AggregatorRegistry } from "prom-client";
import type { Logger } from "../logger.ts";
import type { MetricsResponse } from "./messages.ts";
import { isListening, isMetricsRequest } from "./messages.ts";
import type { RestartPolicyOptions } from "./restart-policy.ts";
import { DEFAULT_RESTART_POLICY, RestartPolicy } from "./restart-policy.ts";

/**
 * How long a graceful stop may take before the workers left are killed: each worker's own stop
 * drains its passes and gives gRPC calls 5 s, well within this.
 */
const STOP_DEADLINE_MS = 30_000;

export interface SupervisorOptions {
  readonly workers: number;
  readonly logger: Logger;
  readonly restart?: RestartPolicyOptions;
  readonly now?: () => number;
}

export class WorkerSupervisor {
  private readonly live = new Map<number, Worker>();
  private readonly listening = new Set<number>();
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  private readonly policy: RestartPolicy;
  private readonly aggregator = new AggregatorRegistry();
  private readonly now: () => number;
  private stopping: Promise<number> | undefined;
  private ready = false;
  /** Any worker that ended badly during a stop, or a stop forced by crashes or the deadline. */
  private failed = false;
  private startWaiter: { resolve(ports: { httpPort: number; grpcPort: number }): void; reject(error: Error): void } | undefined;
  private onAllExited: (() => void) | undefined;
  /** Resolves with the exit code once the supervisor has stopped for good (after stop() or a give-up). */
  readonly stopped: Promise<number>;
  private settleStopped!: (code: number) => void;

  constructor(private readonly options: SupervisorOptions) {
    this.policy = new RestartPolicy(options.restart ?? DEFAULT_RESTART_POLICY);
    this.now = options.now ?? Date.now;
    this.stopped = new Promise((resolve) => (this.settleStopped = resolve));
    cluster.on("message", (worker, message: unknown) => this.onMessage(worker, message));
    cluster.on("exit", (worker, code, signal) => this.onExit(worker, code, signal));
  }

  /**
   * Forks the workers and resolves with the ports once every one listens. If one exits first
   * (a store it cannot reach, a port in use), the others are stopped and this rejects: the
   * coordinator fails to start as a single process would.
   */
  start(): Promise<{ httpPort: number; grpcPort: number }> {
    const started = new Promise<{ httpPort: number; grpcPort: number }>((resolve, reject) => (this.startWaiter = { resolve, reject }));
    for (let i = 0; i < this.options.workers; i++) this.fork();
    return started;
  }

  /** Graceful stop: SIGTERM to every worker, SIGKILL to those left at the deadline. Resolves with the exit code. */
  stop(): Promise<number> {
    if (this.stopping) return this.stopping;
    for (const timer of this.restartTimers) clearTimeout(timer);
    this.restartTimers.clear();
    this.stopping = new Promise<number>((resolve) => {
      const finish = (): void => {
        clearTimeout(deadline);
        const code = this.failed ? 1 : 0;
        this.settleStopped(code);
        resolve(code);
      };
      const deadline = setTimeout(() => {
        this.failed = true;
        for (const worker of this.live.values()) {
          this.options.logger.error({ worker: worker.id, pid: worker.process.pid }, "worker did not stop in time; killing it");
          worker.process.kill("SIGKILL");
        }
      }, STOP_DEADLINE_MS);
      if (this.live.size === 0) return finish();
      this.onAllExited = finish;
      for (const worker of this.live.values()) worker.process.kill("SIGTERM");
    });
    return this.stopping;
  }

  private fork(): void {
    const worker = cluster.fork();
    this.live.set(worker.id, worker);
    this.options.logger.info({ worker: worker.id, pid: worker.process.pid }, "worker started");
  }

  private onMessage(worker: Worker, message: unknown): void {
    if (isListening(message)) {
      this.listening.add(worker.id);
      this.options.logger.info({ worker: worker.id, pid: worker.process.pid, httpPort: message.httpPort, grpcPort: message.grpcPort }, "worker listening");
      if (!this.ready && this.listening.size === this.options.workers) {
        this.ready = true;
        this.startWaiter?.resolve({ httpPort: message.httpPort, grpcPort: message.grpcPort });
      }
    } else if (isMetricsRequest(message)) {
      const answer = (response: MetricsResponse): void => {
        if (worker.isConnected()) worker.send(response);
      };
      this.aggregator.clusterMetrics().then(
        (text) => answer({ type: "dtx:metrics-response", id: message.id, text }),
        (error: unknown) => answer({ type: "dtx:metrics-response", id: message.id, error: error instanceof Error ? error.message : String(error) }),
      );
    }
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    this.live.delete(worker.id);
    const wasListening = this.listening.delete(worker.id);
    const how = { worker: worker.id, pid: worker.process.pid, code, signal };
    if (this.stopping) {
      if (code !== 0) this.failed = true;
      this.options.logger.info(how, "worker stopped");
      if (this.live.size === 0) this.onAllExited?.();
      return;
    }
    if (!this.ready) {
      this.options.logger.error(how, "worker exited before it listened; stopping the coordinator");
      this.failed = true;
      this.startWaiter?.reject(new Error(`worker ${worker.id} exited (${signal ?? `code ${String(code)}`}) before it listened`));
      void this.stop();
      return;
    }
    const decision = this.policy.crashed(this.now());
    if (decision.kind === "give-up") {
      this.options.logger.fatal({ ...how, recentCrashes: decision.recentCrashes }, "workers keep crashing; stopping the coordinator");
      this.failed = true;
      void this.stop();
      return;
    }
    this.options.logger.error({ ...how, wasListening, restartInMs: decision.delayMs, recentCrashes: decision.recentCrashes }, "worker exited; restarting it");
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      this.fork();
    }, decision.delayMs);
    this.restartTimers.add(timer);
  }
}
