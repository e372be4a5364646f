// GET /api/metrics (docs/protocol.md#admin-metrics-and-health): dtm's metric names and labels, counted from real HTTP and gRPC
// requests, real branch calls and real processing passes.
import { describe, expect, it } from "vitest";
import { DtxClient as SdkClient } from "../../sdk/src/index.ts";
import { sagaBody } from "../helpers/client.ts";
import { useCoordinatorWithBusi } from "../helpers/e2e-env.ts";

const env = useCoordinatorWithBusi();

/** `name{labels} value` lines of the exposition text, as "name{labels}" -> value. */
async function scrape(): Promise<{ contentType: string; series: Map<string, number>; text: string }> {
  const res = await fetch(`${env.dtx.url}/api/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { contentType: res.headers.get("content-type") ?? "", series, text };
}

const value = (series: Map<string, number>, key: string): number => series.get(key) ?? 0;

describe("health", () => {
  it("/api/ping is dtm's pong; /api/dtx/health pings the store", async () => {
    expect(await (await fetch(`${env.dtx.url}/api/ping`)).json()).toEqual({ msg: "pong" });
    const health = await fetch(`${env.dtx.url}/api/dtx/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
  });
});

describe("GET /api/metrics", () => {
  it("serves Prometheus text with the server info and the process's metrics", async () => {
    const { contentType, series, text } = await scrape();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect([...series.keys()].find((k) => k.startsWith("dtm_server_info{"))).toMatch(/^dtm_server_info\{version="v1\.19\.0-dtx\.[^"]+"\}$/);
    expect(text).toContain("# TYPE dtm_server_process_total counter");
    expect(text).toContain("# TYPE dtm_transaction_handled_duration histogram");
    expect(series.has("process_cpu_user_seconds_total")).toBe(true);
    expect(series.has("nodejs_eventloop_lag_seconds")).toBe(true);
  });

  it("counts requests by API and ok/fail, branch calls by branch and op, and passes by trans type", async () => {
    const before = (await scrape()).series;
    const ok = await env.dtx.client.submit(sagaBody("metrics-ok", (n) => env.busi.url(n), { wait_result: true }));
    expect(ok.status).toBe(200);
    env.busi.program({ gid: "metrics-fail", name: "TransIn" }, "FAILURE");
    const failed = await env.dtx.client.submit(sagaBody("metrics-fail", (n) => env.busi.url(n), { wait_result: true }));
    expect(failed.status).toBe(409);
    const bad = await fetch(`${env.dtx.url}/api/dtmsvr/submit`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(bad.status).toBe(400);
    const after = (await scrape()).series;
    const added = (key: string): number => value(after, key) - value(before, key);

    // submit: two answered (200, and 409 for the failed saga: >= 400 is fail, as in dtm), one refused
    expect(added('dtm_server_process_total{type="http",api="submit",status="ok"}')).toBe(1);
    expect(added('dtm_server_process_total{type="http",api="submit",status="fail"}')).toBe(2);
    expect(added('dtm_server_response_duration_count{type="http",api="submit"}')).toBe(3);
    // branch calls: what the participant received, counted once each
    expect(env.busi.calls({ gid: "metrics-ok" })).toHaveLength(2);
    expect(env.busi.calls({ gid: "metrics-fail" })).toHaveLength(4);
    // (no branchid label: branch ids are chosen by clients, docs/overload.md)
    expect(added('dtm_branch_process_total{model="saga",branchtype="action",status="ok"}')).toBe(3);
    expect(added('dtm_branch_process_total{model="saga",branchtype="action",status="fail"}')).toBe(1);
    expect(added('dtm_branch_process_total{model="saga",branchtype="compensate",status="ok"}')).toBe(2);
    // one pass per saga; the one that ended failed is "fail", as dtm's Process returns ErrFailure
    expect(added('dtm_transaction_process_total{model="saga",status="ok"}')).toBe(1);
    expect(added('dtm_transaction_process_total{model="saga",status="fail"}')).toBe(1);
    expect(added('dtm_transaction_handled_duration_count{model="saga"}')).toBe(2);
  });

  it("counts a pass whose branch errored as fail", async () => {
    const gid = "metrics-error";
    env.busi.program({ gid, name: "TransIn" }, "ERROR");
    const before = (await scrape()).series;
    await env.dtx.client.submit(sagaBody(gid, (n) => env.busi.url(n)));
    await env.dtx.client.settle();
    expect(await env.dtx.client.status(gid)).toBe("submitted");
    const after = (await scrape()).series;
    expect(value(after, 'dtm_transaction_process_total{model="saga",status="fail"}') - value(before, 'dtm_transaction_process_total{model="saga",status="fail"}')).toBe(1);
    expect(value(after, 'dtm_branch_process_total{model="saga",branchtype="action",status="fail"}') - value(before, 'dtm_branch_process_total{model="saga",branchtype="action",status="fail"}')).toBe(1);
  });

  it("counts gRPC calls by method", async () => {
    const client = new SdkClient({ grpcServer: `127.0.0.1:${env.dtx.grpcPort}`, server: env.dtx.url });
    try {
      const before = (await scrape()).series;
      await client.newGid();
      await client.newGid();
      const after = (await scrape()).series;
      expect(value(after, 'dtm_server_process_total{type="grpc",api="newgid",status="ok"}') - value(before, 'dtm_server_process_total{type="grpc",api="newgid",status="ok"}')).toBe(2);
    } finally {
      await client.close();
    }
  });

  it("keeps series bounded: thousands of client-chosen branch ids add no series", async () => {
    const seriesCount = async (): Promise<number> => [...(await scrape()).series.keys()].filter((k) => k.startsWith("dtm_")).length;
    /** TCC transactions whose branches are registered under ids the client chose, confirmed with wait_result. */
    const flood = async (round: string, gidCount: number, branches: number): Promise<void> => {
      const gids = Array.from({ length: gidCount }, (_, i) => `metrics-flood-${round}-${i}`);
      const post = (path: string, body: unknown): Promise<Response> =>
        fetch(`${env.dtx.url}/api/dtmsvr/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      for (const gid of gids) expect((await post("prepare", { gid, trans_type: "tcc" })).status).toBe(200);
      const register = async (i: number): Promise<number> => {
        const gid = gids[i % gids.length] ?? "";
        const id = `client-id-${round}-${i}`;
        return (await post("registerBranch", { gid, trans_type: "tcc", branch_id: id, confirm: env.busi.url(`Confirm-${id}`), cancel: env.busi.url(`Cancel-${id}`), data: "{}" })).status;
      };
      for (let i = 0; i < branches; i += 50) {
        const statuses = await Promise.all(Array.from({ length: Math.min(50, branches - i) }, (_, k) => register(i + k)));
        expect(statuses.every((s) => s === 200)).toBe(true);
      }
      const submits = await Promise.all(gids.map((gid) => env.dtx.client.submit({ gid, trans_type: "tcc", wait_result: true })));
      expect(submits.map((r) => r.status)).toEqual(gids.map(() => 200));
    };
    // A first round sees every closed label value (tcc, confirm, the APIs it uses) once.
    await flood("warm", 2, 4);
    await scrape(); // and the metrics route's own series
    const before = await seriesCount();
    await flood("big", 20, 2000);
    expect(env.busi.calls({ op: "confirm" }).length).toBe(2004);
    // (2,000 client-chosen ids; with a branchid label each would be a series of its own)
    expect(await seriesCount()).toBe(before);
    expect((await scrape()).text).not.toContain("client-id-");
  }, 120_000);

  it("labels unknown paths by route, not by the path a client sent", async () => {
    const res = await fetch(`${env.dtx.url}/no/such/path-${Date.now()}`);
    expect(res.status).toBe(404);
    const { series, text } = await scrape();
    expect(text).not.toContain("path-");
    expect(value(series, 'dtm_server_process_total{type="http",api="",status="fail"}')).toBeGreaterThanOrEqual(1);
  });
});
