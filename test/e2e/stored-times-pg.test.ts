import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestCoordinator } from "../helpers/coordinator.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import { PgArea } from "../helpers/store-areas.ts";

/**
 * On PostgreSQL, a row whose times no JS Date can hold (`infinity`, a year past 275760, as a hand
 * edit or another tool may leave) still reads back through /query and /all
 * (docs/input-limits.md, "Rows that are already out of range").
 */

const area = new PgArea("e2e_stored_times");
let dtx: TestCoordinator;

beforeAll(async () => {
  await area.open();
  dtx = await startCoordinator({ store: { driver: "postgres", url: area.url, schema: area.schema, poolSize: 2 } });
});
afterAll(async () => {
  await dtx?.stop();
  await area.close();
});

async function get(path: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${dtx.url}${path}`);
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

describe("stored times out of the JS range on PostgreSQL", () => {
  it("infinity and year 294276 are listed, clamped to years 0000-9999", async () => {
    const submit = await request(`${dtx.url}/api/dtmsvr/submit`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      // wait_result: the pass has ended (and written its times) before the test overwrites them.
      body: JSON.stringify({ gid: "pg-absurd", trans_type: "saga", wait_result: true, steps: [{ action: "", compensate: "" }], payloads: [""] }),
    });
    expect(submit.statusCode).toBe(200);
    await submit.body.dump();
    await area.query(`UPDATE ${area.table("trans_global")} SET create_time = 'infinity', update_time = '-infinity', finish_time = '294276-01-01 00:00:00+00' WHERE gid = 'pg-absurd'`);
    await area.query(`UPDATE ${area.table("trans_branch_op")} SET create_time = 'infinity' WHERE gid = 'pg-absurd'`);

    const q = await get("/api/dtmsvr/query?gid=pg-absurd");
    expect(q.status, JSON.stringify(q.json)).toBe(200);
    const t = q.json["transaction"] as Record<string, unknown>;
    expect(t["create_time"]).toBe("9999-12-31T23:59:59.999Z");
    expect(t["update_time"]).toBe("0000-01-01T00:00:00.000Z");
    expect([null, "9999-12-31T23:59:59.999Z"]).toContain(t["finish_time"]);
    const all = await get("/api/dtmsvr/all?limit=10");
    expect(all.status, JSON.stringify(all.json)).toBe(200);
    expect((all.json["transactions"] as { gid: string }[]).map((x) => x.gid)).toContain("pg-absurd");
  });
});
