/**
 * A store that stops answering (docs/store-outages.md): a TCP proxy (../helpers/tcp-proxy.ts)
 * in front of the real PostgreSQL, MariaDB and Redis black-holes the coordinator's store
 * connections for 15 s (they stay open, nothing comes back), then heals, while a steady trickle
 * of sagas, queries and health checks runs against the coordinator and a real participant.
 *
 * Asserted: no request takes longer than the store timeout + 1 s; during the outage submits and
 * queries answer 503 STORE_UNAVAILABLE with Retry-After, health 503, ping 200; after the heal
 * health is 200 again, and every submit that was acknowledged exists and reaches `succeed`
 * within 10 s of the heal. The time from heal to all finished is printed (bench/README.md).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Busi } from "../busi/index.ts";
import { startBusi } from "../busi/index.ts";
import { sagaBody } from "../helpers/client.ts";
import { startCoordinator } from "../helpers/coordinator.ts";
import { OUTAGE_STORES } from "../helpers/outage-stores.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

const STORE_TIMEOUT_S = 1.5;
const LIMIT_MS = (STORE_TIMEOUT_S + 1) * 1000;
const WARM_UP_MS = 3_000;
const OUTAGE_MS = 15_000;
const FINISH_WITHIN_MS = 10_000;
const SUBMIT_EVERY_MS = 100;
const PROBE_EVERY_MS = 250;

type Kind = "submit" | "query" | "health" | "ping";

interface Sample {
  kind: Kind;
  gid?: string;
  start: number;
  end: number;
  status: number;
  code: string | undefined;
  retryAfter: string | null;
}

let busi: Busi;
beforeAll(async () => {
  busi = await startBusi();
});
afterAll(async () => {
  await busi.close();
});

/** One HTTP request, timed; a transport failure or a hang past 20 s is a sample with status 0. */
async function probe(base: string, kind: Kind, path: string, body?: unknown, gid?: string): Promise<Sample> {
  const start = performance.now();
  try {
    const res = await fetch(`${base}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { code?: string }).code;
    } catch {
      code = undefined;
    }
    return { kind, ...(gid === undefined ? {} : { gid }), start, end: performance.now(), status: res.status, code, retryAfter: res.headers.get("retry-after") };
  } catch {
    return { kind, ...(gid === undefined ? {} : { gid }), start, end: performance.now(), status: 0, code: undefined, retryAfter: null };
  }
}

describe.each(OUTAGE_STORES)("a $name store that black-holes for 15 s", (c) => {
  it("never holds a request past the store timeout + 1 s, answers 503 while out, and finishes every acknowledged saga within 10 s of the heal", { timeout: 90_000 }, async () => {
    const area = await c.open("outage");
    const proxy = await TcpProxy.start(c.target());
    const dtx = await startCoordinator({
      store: { ...area.store((url) => TcpProxy.through(url, proxy)), timeout: STORE_TIMEOUT_S },
      retryInterval: 1, maxRetryInterval: 2, requestTimeout: 1, cronInterval: 0.2,
    });
    const samples: Promise<Sample>[] = [];
    const timers: NodeJS.Timeout[] = [];
    try {
      let n = 0;
      const acked: string[] = [];
      timers.push(setInterval(() => {
        const gid = `outage-${c.name}-${n++}`;
        samples.push(probe(dtx.url, "submit", "/api/dtmsvr/submit", sagaBody(gid, (s) => busi.url(s)), gid).then((s) => {
          if (s.status === 200) acked.push(gid);
          return s;
        }));
      }, SUBMIT_EVERY_MS));
      timers.push(setInterval(() => {
        const gid = acked[acked.length - 1] ?? "none";
        samples.push(probe(dtx.url, "query", `/api/dtmsvr/query?gid=${gid}`));
        samples.push(probe(dtx.url, "health", "/api/dtx/health"));
        samples.push(probe(dtx.url, "ping", "/api/ping"));
      }, PROBE_EVERY_MS));

      // The participant fails for the last second before the outage and through it, so sagas
      // acknowledged then are still unfinished when the store goes: the cron must finish them after the heal.
      await waitFor(WARM_UP_MS - 1_000);
      busi.setDefault("ERROR");
      await waitFor(1_000);
      const outageStart = performance.now();
      proxy.blackHole();
      await waitFor(OUTAGE_MS);
      const healAt = performance.now();
      proxy.heal();
      busi.setDefault("SUCCESS");
      for (const t of timers) clearInterval(t);
      // Health turns 200 again once the store answers.
      let healthy: Sample | undefined;
      while (performance.now() - healAt < FINISH_WITHIN_MS) {
        const s = await probe(dtx.url, "health", "/api/dtx/health");
        samples.push(Promise.resolve(s));
        if (s.status === 200) {
          healthy = s;
          break;
        }
      }
      const all = await Promise.all(samples);

      // Every acknowledged submit exists and finishes, within 10 s of the heal.
      let pending = [...acked];
      let unfinishedAtHeal: number | undefined;
      while (pending.length > 0 && performance.now() - healAt < FINISH_WITHIN_MS) {
        const statuses = await Promise.all(pending.map(async (gid) => [gid, await dtx.client.status(gid).catch(() => "unreadable")] as const));
        pending = statuses.filter(([, s]) => s !== "succeed").map(([gid]) => gid);
        unfinishedAtHeal ??= pending.length;
        if (pending.length > 0) await waitFor(100);
      }
      const recoveredMs = performance.now() - healAt;
      const during = all.filter((s) => s.start > outageStart + 100 && s.end < healAt);
      const byKind = (kind: Kind) => during.filter((s) => s.kind === kind);
      const slowest = all.reduce((a, s) => (s.end - s.start > a.end - a.start ? s : a));
      // The figures bench/README.md records ("Store outages").
      process.stdout.write(`[store-outage] ${c.name}: ${acked.length} sagas acknowledged of ${n} submitted, ${unfinishedAtHeal ?? 0} of them unfinished once health was back; ${all.length} requests, slowest ${Math.round(slowest.end - slowest.start)} ms (${slowest.kind} ${slowest.status}); health 200 again ${healthy ? Math.round(healthy.end - healAt) : "never"} ms after the heal; all acknowledged sagas succeeded ${Math.round(recoveredMs)} ms after the heal\n`);

      expect(pending, "acknowledged sagas not finished within 10 s of the heal").toEqual([]);
      expect(healthy, "health never answered 200 after the heal").toBeDefined();
      expect(all.filter((s) => s.end - s.start > LIMIT_MS).map((s) => `${s.kind} ${s.status} ${Math.round(s.end - s.start)} ms`), "requests slower than the store timeout + 1 s").toEqual([]);
      expect(all.filter((s) => s.status === 0 || (s.status >= 500 && s.status !== 503)).map((s) => `${s.kind} ${s.status}`), "transport failures or 5xx other than 503").toEqual([]);
      for (const kind of ["submit", "query", "health"] as const) {
        expect(byKind(kind).length, `${kind} requests during the outage`).toBeGreaterThan(10);
        expect(new Set(byKind(kind).map((s) => `${s.status} ${s.code} retry-after=${s.retryAfter !== null}`)), kind).toEqual(new Set(["503 STORE_UNAVAILABLE retry-after=true"]));
      }
      expect(new Set(byKind("ping").map((s) => s.status))).toEqual(new Set([200]));
      expect(acked.length, "sagas acknowledged before the outage").toBeGreaterThan(10);
      expect(unfinishedAtHeal, "sagas the cron had to finish after the heal").toBeGreaterThan(0);
    } finally {
      for (const t of timers) clearInterval(t);
      await Promise.allSettled(samples);
      proxy.heal();
      await dtx.stop();
      await proxy.close();
      await area.close();
    }
  });
});

/** Lets real time pass while the trickle runs (the outage is real time: the point is what the drivers do). */
function waitFor(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
