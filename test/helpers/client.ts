import { request } from "undici";

export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: T;
  text: string;
}

export interface WireTrans {
  gid: string;
  trans_type: string;
  status: string;
  rollback_reason?: string;
  next_cron_interval: number;
  next_cron_time: string;
  options: string;
  [key: string]: unknown;
}

export interface WireBranch {
  branch_id: string;
  op: string;
  status: string;
  url?: string;
  bin_data?: string;
  [key: string]: unknown;
}

/** A small client for tests: the dtm HTTP API plus dtx's test-control API. */
export class DtxClient {
  constructor(readonly baseUrl: string) {}

  async call<T = Record<string, unknown>>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const hasBody = body !== undefined;
    const res = await request(`${this.baseUrl}${path}`, {
      method,
      headers: hasBody ? { "content-type": "application/json", ...headers } : headers,
      body: hasBody ? (typeof body === "string" ? body : JSON.stringify(body)) : undefined,
    });
    const text = await res.body.text();
    let parsed: unknown = undefined;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.statusCode, body: parsed as T, text };
  }

  submit(body: Record<string, unknown>): Promise<ApiResponse> {
    return this.call("POST", "/api/dtmsvr/submit", body);
  }

  async query(gid: string): Promise<{ transaction: WireTrans | null; branches: WireBranch[] }> {
    const r = await this.call<{ transaction: WireTrans | null; branches: WireBranch[] }>("GET", `/api/dtmsvr/query?gid=${encodeURIComponent(gid)}`);
    if (r.status !== 200) throw new Error(`query ${gid}: ${r.status} ${r.text}`);
    return r.body;
  }

  async status(gid: string): Promise<string | undefined> {
    return (await this.query(gid)).transaction?.status;
  }

  /** Branch statuses in store order, the shape dtm's tests assert. */
  async branchStatuses(gid: string): Promise<string[]> {
    return (await this.query(gid)).branches.map((b) => b.status);
  }

  /** Advances the coordinator's clock by `advanceMs`, then runs one cron round and waits for it. */
  async cron(advanceMs = 0): Promise<number> {
    const r = await this.call<{ processed: number }>("POST", "/api/dtx/test/cron", { advanceMs });
    if (r.status !== 200) throw new Error(`test cron: ${r.status} ${r.text}`);
    return r.body.processed;
  }

  async advance(advanceMs: number): Promise<number> {
    const r = await this.call<{ now: number }>("POST", "/api/dtx/test/clock", { advanceMs });
    if (r.status !== 200) throw new Error(`test clock: ${r.status} ${r.text}`);
    return r.body.now;
  }

  /** Waits until every pass running in the coordinator has ended. */
  async settle(): Promise<void> {
    const r = await this.call("POST", "/api/dtx/test/settle", {});
    if (r.status !== 200) throw new Error(`test settle: ${r.status} ${r.text}`);
  }

  async armCrash(point: string, gid?: string, hit = 1): Promise<void> {
    const r = await this.call("POST", "/api/dtx/test/crash", { point, gid, hit });
    if (r.status !== 200) throw new Error(`test crash: ${r.status} ${r.text}`);
  }
}

/** A two-step saga body against a busi participant. */
export function sagaBody(gid: string, url: (name: string) => string, extra: Record<string, unknown> = {}, steps = 2): Record<string, unknown> {
  const names = [["TransOut", "TransOutRevert"], ["TransIn", "TransInRevert"], ["Step3", "Step3Revert"], ["Step4", "Step4Revert"]];
  const chosen = Array.from({ length: steps }, (_, i) => names[i] ?? [`Step${i + 1}`, `Step${i + 1}Revert`]);
  return {
    gid,
    trans_type: "saga",
    steps: chosen.map(([a, c]) => ({ action: url(a!), compensate: url(c!) })),
    payloads: chosen.map((_, i) => JSON.stringify({ amount: 30, step: i })),
    ...extra,
  };
}
