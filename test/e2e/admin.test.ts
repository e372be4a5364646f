// The built-in admin view (docs/protocol.md#admin-metrics-and-health): its routes and security headers over real HTTP, static
// checks of the page and script, and the exact API calls the script makes against a coordinator.
import { describe, expect, it } from "vitest";
import { ADMIN_API, ADMIN_JS } from "../../server/src/api/http/admin-page.ts";
import { sagaBody } from "../helpers/client.ts";
import { useCoordinatorWithBusi } from "../helpers/e2e-env.ts";

const env = useCoordinatorWithBusi();

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ASSETS = [
  { path: "/admin/", type: /^text\/html; charset=utf-8$/ },
  { path: "/admin/app.js", type: /^text\/javascript; charset=utf-8$/ },
  { path: "/admin/style.css", type: /^text\/css; charset=utf-8$/ },
];

describe("admin routes", () => {
  it.each(ASSETS)("GET $path answers with its content type and every security header", async ({ path, type }) => {
    const res = await fetch(`${env.dtx.url}${path}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(type);
    expect(res.headers.get("content-security-policy")).toBe(CSP);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect((await res.text()).length).toBeGreaterThan(100);
  });

  it("/ and /admin lead to the admin page", async () => {
    for (const path of ["/", "/admin"]) {
      const res = await fetch(`${env.dtx.url}${path}`, { redirect: "manual" });
      expect(res.status).toBe(302);
      expect(res.headers.get("location")).toBe("/admin/");
    }
    const followed = await fetch(`${env.dtx.url}/`);
    expect(followed.status).toBe(200);
    expect(followed.url).toBe(`${env.dtx.url}/admin/`);
    expect(await followed.text()).toContain("<title>dtx admin</title>");
  });

  it("other unknown paths stay 404 ROUTE_NOT_FOUND", async () => {
    for (const path of ["/admin/nope.js", "/index.html", "/assets/x.js"]) {
      const res = await fetch(`${env.dtx.url}${path}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { code: string }).code).toBe("ROUTE_NOT_FOUND");
    }
  });
});

describe("admin page, statically", () => {
  it("the HTML loads only same-origin /admin/ assets and has no inline script or handler", async () => {
    const html = await (await fetch(`${env.dtx.url}/admin/`)).text();
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    const assets = refs.filter((r) => !r.startsWith("#"));
    expect(assets.sort()).toEqual(["/admin/app.js", "/admin/style.css"]);
    for (const m of html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/gi)) {
      expect(m[0]).toMatch(/\bsrc="\/admin\/app\.js"/);
      expect(m[1]!.trim()).toBe("");
    }
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/<style\b|\sstyle\s*=/i);
    expect(html).not.toMatch(/javascript:/i);
  });

  it("the script never parses HTML or evaluates strings", async () => {
    const js = await (await fetch(`${env.dtx.url}/admin/app.js`)).text();
    expect(js).toBe(ADMIN_JS);
    for (const banned of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setTimeout(\"", "javascript:"]) {
      expect(js, banned).not.toContain(banned);
    }
    // No template literals left unexpanded from the TypeScript source.
    expect(js).not.toContain("${");
    // Its API table is ADMIN_API, and it calls the API only through it.
    expect(js).toContain(`var API = ${JSON.stringify(ADMIN_API)};`);
    expect(js.match(/\/api\//g)?.length).toBe(Object.values(ADMIN_API).filter((v) => typeof v === "string" && v.startsWith("/api/")).length);
    for (const key of ["version", "all", "query", "forceStop", "resetNextCronTime", "scanKV"]) expect(js).toContain(`API.${key}`);
  });
});

/** The script's `call()`: path plus URLSearchParams, a JSON body for POST; throws with message and code. */
async function pageCall(method: "GET" | "POST", path: string, params?: Record<string, string>, body?: unknown): Promise<Record<string, unknown>> {
  const url = `${env.dtx.url}${path}${params ? `?${new URLSearchParams(params).toString()}` : ""}`;
  const res = await fetch(url, {
    method,
    headers: body !== undefined ? { "content-type": "application/json" } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${String(json["message"])} (${String(json["code"])})`);
  return json;
}

describe("the API calls the script makes", () => {
  it("version", async () => {
    expect((await pageCall("GET", ADMIN_API.version))["version"]).toMatch(/^v/);
  });

  it("list, detail, resetNextCronTime and forceStop on a saga that keeps retrying", async () => {
    const gid = "admin-saga-1";
    env.busi.programAlways({ gid, name: "TransOut" }, "ERROR");
    expect((await env.dtx.client.submit(sagaBody(gid, (n) => env.busi.url(n)))).status).toBe(200);
    await env.busi.waitForCalls({ gid, name: "TransOut" }, 1);
    await env.dtx.client.settle();

    // The list's first page with the filters the page offers, as listPage() sends them.
    const filtered = await pageCall("GET", ADMIN_API.all, { position: "", limit: String(ADMIN_API.pageSize), status: "submitted", transType: "saga" });
    const rows = filtered["transactions"] as Array<Record<string, unknown>>;
    expect(rows.map((t) => t["gid"])).toContain(gid);
    const byGid = await pageCall("GET", ADMIN_API.all, { position: "", limit: String(ADMIN_API.pageSize), gid });
    expect((byGid["transactions"] as Array<Record<string, unknown>>).map((t) => t["gid"])).toEqual([gid]);
    const row = rows.find((t) => t["gid"] === gid)!;
    for (const c of ["gid", "trans_type", "status", "protocol", "create_time", "update_time", "next_cron_time"]) expect(row).toHaveProperty(c);
    expect(new Date(row["create_time"] as string).toISOString()).toBe(row["create_time"]);

    // Detail.
    const detail = await pageCall("GET", ADMIN_API.query, { gid });
    const trans = detail["transaction"] as Record<string, unknown>;
    expect(trans["status"]).toBe("submitted");
    const branches = detail["branches"] as Array<Record<string, unknown>>;
    expect(branches.length).toBe(4);
    for (const b of branches) for (const c of ["branch_id", "op", "status", "create_time", "update_time", "url"]) expect(b).toHaveProperty(c);

    // Reset next cron time: due now (no later than before).
    const before = Date.parse(trans["next_cron_time"] as string);
    expect(await pageCall("POST", ADMIN_API.resetNextCronTime, undefined, { gid })).toEqual({ dtm_result: "SUCCESS" });
    const afterReset = (await pageCall("GET", ADMIN_API.query, { gid }))["transaction"] as Record<string, unknown>;
    expect(Date.parse(afterReset["next_cron_time"] as string)).toBeLessThanOrEqual(before);

    // Force Stop: failed; a second one shows the API's message and code.
    expect(await pageCall("POST", ADMIN_API.forceStop, undefined, { gid })).toEqual({ dtm_result: "SUCCESS" });
    expect(await env.dtx.client.status(gid)).toBe("failed");
    await expect(pageCall("POST", ADMIN_API.forceStop, undefined, { gid })).rejects.toThrow(/^HTTP 409: .+ \(FAILURE\)$/);
    await expect(pageCall("POST", ADMIN_API.resetNextCronTime, undefined, { gid: "admin-no-such" })).rejects.toThrow(/^HTTP 404: .+\(TRANS_NOT_FOUND\)$/);
  });

  it("the list pages through next_position", async () => {
    for (let i = 0; i < ADMIN_API.pageSize + 3; i++) {
      expect((await env.dtx.client.call("POST", "/api/dtmsvr/prepare", { gid: `admin-page-${i}`, trans_type: "msg", steps: [], payloads: [], query_prepared: env.busi.url("QueryPrepared") })).status).toBe(200);
    }
    const seen = new Set<string>();
    let position = "";
    for (let pages = 0; pages < 10; pages++) {
      const r = await pageCall("GET", ADMIN_API.all, { position, limit: String(ADMIN_API.pageSize), status: "prepared", transType: "msg" });
      for (const t of r["transactions"] as Array<Record<string, unknown>>) seen.add(t["gid"] as string);
      position = r["next_position"] as string;
      if (!position) break;
    }
    expect(seen.size).toBe(ADMIN_API.pageSize + 3);
  });

  it("/all clamps a limit above 1000 to 1000, as scanKV does, instead of refusing it (D12)", async () => {
    const total = 1003;
    const gids = Array.from({ length: total }, (_, i) => `admin-clamp-${i}`);
    for (let i = 0; i < total; i += 50) {
      const answers = await Promise.all(gids.slice(i, i + 50).map((gid) => env.dtx.client.call("POST", "/api/dtmsvr/prepare", { gid, trans_type: "xa" })));
      expect(answers.map((a) => a.status).filter((s) => s !== 200)).toEqual([]);
    }
    const page = (position: string) =>
      env.dtx.client.call<{ transactions: { gid: string }[] | null; next_position: string }>("GET", `/api/dtmsvr/all?limit=5000&status=prepared&transType=xa&position=${position}`);
    const first = await page("");
    expect(first.status).toBe(200);
    expect(first.body.transactions).toHaveLength(1000);
    expect(first.body.next_position).not.toBe("");
    const second = await page(first.body.next_position);
    expect(second.status).toBe(200);
    const seen = new Set([...(first.body.transactions ?? []), ...(second.body.transactions ?? [])].map((t) => t.gid));
    expect(gids.every((gid) => seen.has(gid))).toBe(true);
    expect((await env.dtx.client.call("GET", "/api/dtmsvr/all?limit=1001")).status).toBe(200);
  });

  it("topics: scanKV cat=topics shows a subscribed topic and its subscribers", async () => {
    const sub = await env.dtx.client.call("GET", `/api/dtmsvr/subscribe?${new URLSearchParams({ topic: "admin-topic", url: env.busi.url("Sub"), remark: "<b>r</b>" }).toString()}`);
    expect(sub.status).toBe(200);
    const r = await pageCall("GET", ADMIN_API.scanKV, { cat: ADMIN_API.topicsCat, position: "", limit: "100" });
    const entry = (r["kv"] as Array<Record<string, unknown>>).find((e) => e["k"] === "admin-topic")!;
    expect(JSON.parse(entry["v"] as string)).toEqual([{ url: env.busi.url("Sub"), remark: "<b>r</b>" }]);
    expect(r).toHaveProperty("next_position");
  });
});
