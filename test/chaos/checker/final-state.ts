import { setTimeout as sleep } from "node:timers/promises";
import type { FinalTrans } from "../contracts.ts";

export interface ReadFinalOptions {
  /** Queries in flight at once (default 8: the coordinator shares 2 cores with everything else). */
  concurrency?: number;
  /** Attempts per gid on 503/429 or a connection error (default 20). */
  attempts?: number;
  /** Timeout of one query (ms, default 5000). */
  timeoutMs?: number;
  /** Cap of the wait between attempts (ms, default 2000; a Retry-After above it is cut to it). */
  maxDelayMs?: number;
  /** Told of each failed attempt that will be retried (for logs, and for tests that wait for one). */
  onRetry?: (gid: string, reason: string) => void;
}

type Settings = Required<Omit<ReadFinalOptions, "onRetry">> & Pick<ReadFinalOptions, "onRetry">;

interface QueryBody {
  transaction: { status?: unknown; trans_type?: unknown } | null;
  branches?: Array<{ branch_id?: unknown; op?: unknown; status?: unknown }>;
}

/** Answers worth another try: the store is down or the coordinator is shedding load. */
const RETRIABLE = new Set([429, 502, 503, 504]);

function toFinal(gid: string, body: QueryBody): FinalTrans {
  const out: FinalTrans = {
    gid,
    branches: (body.branches ?? []).map((b) => ({ branchId: String(b.branch_id ?? ""), op: String(b.op ?? ""), status: String(b.status ?? "") })),
  };
  if (body.transaction && typeof body.transaction.status === "string") out.status = body.transaction.status;
  if (body.transaction && typeof body.transaction.trans_type === "string") out.transType = body.transaction.trans_type;
  return out;
}

/** The query route under a coordinator base URL (`http://host:port` or one ending in `/api/dtmsvr`). */
function queryUrl(base: string, gid: string): string {
  const root = base.replace(/\/+$/, "");
  const api = root.endsWith("/api/dtmsvr") ? root : `${root}/api/dtmsvr`;
  return `${api}/query?gid=${encodeURIComponent(gid)}`;
}

async function queryOne(base: string, gid: string, o: Settings): Promise<FinalTrans> {
  let lastError = "";
  for (let attempt = 1; attempt <= o.attempts; attempt++) {
    let delay = Math.min(o.maxDelayMs, 100 * 2 ** attempt);
    try {
      const res = await fetch(queryUrl(base, gid), { signal: AbortSignal.timeout(o.timeoutMs) });
      if (res.ok) return toFinal(gid, (await res.json()) as QueryBody);
      const text = await res.text();
      if (!RETRIABLE.has(res.status)) throw new Error(`query ${gid}: HTTP ${res.status} ${text.slice(0, 200)}`);
      lastError = `HTTP ${res.status}`;
      const retryAfter = Number(res.headers.get("retry-after"));
      if (Number.isFinite(retryAfter) && retryAfter > 0) delay = Math.min(o.maxDelayMs, retryAfter * 1000);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith(`query ${gid}:`)) throw error;
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (attempt < o.attempts) {
      o.onRetry?.(gid, lastError);
      await sleep(delay);
    }
  }
  throw new Error(`query ${gid}: gave up after ${o.attempts} attempts (${lastError})`);
}

/**
 * The final state of each gid, as one coordinator's query API (`GET /api/dtmsvr/query`) reports
 * it: the status (undefined when the gid is unknown) and trans_type, and every branch. At most
 * `concurrency` queries run at once; 503 / 429 (honouring Retry-After, capped) and connection
 * errors are retried a bounded number of times, any other error answer throws. Results come in the
 * order of `gids`.
 */
export async function readFinalTrans(coordinatorHttpUrl: string, gids: string[], options: ReadFinalOptions = {}): Promise<FinalTrans[]> {
  const o: Settings = { concurrency: 8, attempts: 20, timeoutMs: 5_000, maxDelayMs: 2_000, ...options };
  const out = new Array<FinalTrans>(gids.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < gids.length) {
      const i = next++;
      out[i] = await queryOne(coordinatorHttpUrl, gids[i]!, o);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, gids.length)) }, worker));
  return out;
}
