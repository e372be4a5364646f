/**
 * The messages between the primary and its workers over the cluster IPC channel
 * (docs/operations.md#workers). prom-client's own aggregation messages travel on the same channel
 * under their own types.
 */

/** Worker → primary: the coordinator listens on both ports and runs its cron. */
export interface ListeningMessage {
  readonly type: "dtx:listening";
  readonly httpPort: number;
  readonly grpcPort: number;
}

/** Worker → primary: a scrape of /api/metrics landed on this worker; answer with every worker's sum. */
export interface MetricsRequest {
  readonly type: "dtx:metrics-request";
  readonly id: number;
}

/** Primary → worker: the aggregated exposition text, or why there is none. */
export interface MetricsResponse {
  readonly type: "dtx:metrics-response";
  readonly id: number;
  readonly text?: string;
  readonly error?: string;
}

/** Everything a worker sends the primary. */
export type WorkerMessage = ListeningMessage | MetricsRequest;

function hasType(message: unknown, type: string): boolean {
  return typeof message === "object" && message !== null && (message as { type?: unknown }).type === type;
}

export function isListening(message: unknown): message is ListeningMessage {
  return hasType(message, "dtx:listening");
}

export function isMetricsRequest(message: unknown): message is MetricsRequest {
  return hasType(message, "dtx:metrics-request") && typeof (message as { id?: unknown }).id === "number";
}

export function isMetricsResponse(message: unknown): message is MetricsResponse {
  return hasType(message, "dtx:metrics-response") && typeof (message as { id?: unknown }).id === "number";
}
