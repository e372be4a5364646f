// Retention through a running coordinator (docs/retention.md): a real saga finishes, the
// test-control API moves the clock past retention.finishedAge and runs one retention round; the
// finished saga is gone from query and /all, a saga still being retried stays, and the metric
// counts the deletion.
import { describe, expect, it } from "vitest";
import { sagaBody } from "../helpers/client.ts";
import { useCoordinatorWithBusi } from "../helpers/e2e-env.ts";

const HOUR = 3600 * 1000;
const env = useCoordinatorWithBusi({ retention: { finishedAge: 3600 } });

async function retentionRound(advanceMs: number): Promise<{ deleted: number; pruned: number; batches: number }> {
  const r = await env.dtx.client.call<{ deleted: number; pruned: number; batches: number }>("POST", "/api/dtx/test/retention", { advanceMs });
  expect(r.status).toBe(200);
  return r.body;
}

async function removedMetric(): Promise<number> {
  const text = await (await fetch(`${env.dtx.url}/api/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith('dtx_retention_removed_total{kind="trans"}'));
  return Number(line?.split(" ")[1] ?? NaN);
}

describe("retention in a running coordinator", () => {
  it("deletes a finished saga once it is older than retention.finishedAge; one still retried stays", async () => {
    const { client } = env.dtx;
    const url = (n: string): string => env.busi.url(n);
    expect((await client.submit(sagaBody("ret-done", url, { wait_result: true }))).status).toBe(200);
    env.busi.program({ gid: "ret-open", name: "TransIn" }, "ONGOING", "ONGOING", "ONGOING", "ONGOING");
    await client.submit(sagaBody("ret-open", url));
    await client.settle();
    expect(await client.status("ret-done")).toBe("succeed");
    expect(await client.status("ret-open")).toBe("submitted");
    const before = await removedMetric();

    // Younger than the age: nothing goes.
    expect(await retentionRound(HOUR / 2)).toMatchObject({ deleted: 0 });
    expect(await client.status("ret-done")).toBe("succeed");

    expect(await retentionRound(HOUR)).toMatchObject({ deleted: 1 });
    expect(await client.query("ret-done")).toEqual({ transaction: null, branches: [] });
    const all = await client.call<{ transactions: { gid: string }[] }>("GET", "/api/dtmsvr/all?limit=100");
    expect(all.body.transactions.map((t) => t.gid)).not.toContain("ret-done");
    expect(await client.status("ret-open")).toBe("submitted");
    expect(await client.branchStatuses("ret-open")).toHaveLength(4);
    expect(await removedMetric()).toBe(before + 1);

    // The gid may be used again, as a new transaction (as in dtm after DataExpire).
    expect((await client.submit(sagaBody("ret-done", url, { wait_result: true }))).status).toBe(200);
  });
});
