import { createServer } from "node:net";
import type { Readable } from "node:stream";

/** A TCP port on 127.0.0.1 that was free a moment ago (children are started on it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Benchmarks pace their warm-up and measuring windows with real time. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The median of `xs` (the mean of the two middle values for an even count; NaN when empty). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] ?? NaN) : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
}

/** The nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN;
}

/** Calls `onLine` with each complete line a child process writes to `stream` (a partial line is capped at 64 kB). */
export function forEachLine(stream: Readable | null | undefined, onLine: (line: string) => void): void {
  let partial = "";
  stream?.setEncoding("utf8");
  stream?.on("data", (d: string) => {
    partial += d;
    let nl;
    while ((nl = partial.indexOf("\n")) >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      onLine(line);
    }
    if (partial.length > 64_000) partial = partial.slice(-64_000);
  });
}
