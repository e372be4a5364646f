/**
 * A worker's side of the cluster (docs/operations.md#workers): it tells the primary when it
 * listens, lets the primary collect its metrics, and answers a scrape of /api/metrics with the
 * sum over every worker, so Prometheus sees one coordinator whichever worker its connection hit.
 */
import { AggregatorRegistry } from "prom-client";
import type { Registry } from "prom-client";
import type { ListeningMessage, MetricsRequest, WorkerMessage } from "./messages.ts";
import { isMetricsResponse } from "./messages.ts";

/** Scrapes waiting for the primary at once in one worker; more fail at once (a bounded queue). */
const MAX_PENDING_SCRAPES = 16;
/** prom-client gives up on a silent worker after 5 s; this leaves it room to say so. */
const SCRAPE_TIMEOUT_MS = 8_000;

interface Pending {
  resolve(text: string): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class WorkerLink {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();

  /**
   * `registries` are what this worker contributes to the sum. Constructing prom-client's
   * AggregatorRegistry installs its answer to the primary's collection requests.
   */
  constructor(registries: Registry[], private readonly send: (message: WorkerMessage) => void) {
    AggregatorRegistry.setRegistries(registries);
    new AggregatorRegistry();
    process.on("message", (message: unknown) => {
      if (!isMetricsResponse(message)) return;
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.text !== undefined) waiting.resolve(message.text);
      else waiting.reject(new Error(`metrics aggregation failed: ${message.error ?? "no answer"}`));
    });
  }

  /** Tells the primary this worker serves. */
  listening(httpPort: number, grpcPort: number): void {
    const message: ListeningMessage = { type: "dtx:listening", httpPort, grpcPort };
    this.send(message);
  }

  /** The metrics of every worker, summed by the primary. */
  clusterMetrics(): Promise<string> {
    if (this.pending.size >= MAX_PENDING_SCRAPES) return Promise.reject(new Error("too many metrics scrapes waiting for the primary"));
    const id = this.nextId++;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error("the primary did not answer the metrics request in time"));
      }, SCRAPE_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      const request: MetricsRequest = { type: "dtx:metrics-request", id };
      this.send(request);
    });
  }
}
