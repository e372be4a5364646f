/**
 * A failover that leaves the coordinator's store connections open to nowhere
 * (docs/store-outages.md): through a TCP proxy (../helpers/tcp-proxy.ts `failover()`), every
 * connection open at that moment goes silent for good and is never closed, while new connections
 * reach the real server. TCP keepalive does not help a connection with unanswered requests, so the
 * coordinator must drop a connection whose call timed out and open a new one (pg and mysql2
 * destroy it, ioredis reconnects).
 *
 * Asserted, on PostgreSQL, MariaDB and Redis: no request takes longer than the store timeout + 1 s,
 * the only failures are 503 STORE_UNAVAILABLE, they stop within a few store timeouts, every submit
 * after that succeeds, and every acknowledged saga finishes.
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
/** Failures must stop this soon after the failover: a call on a dead connection times out, then the connection is dropped and replaced. */
const RECOVER_WITHIN_MS = 4 * STORE_TIMEOUT_S * 1000;
const TRICKLE_MS = 8_000;
const SUBMIT_EVERY_MS = 100;

let busi: Busi;
beforeAll(async () => {
  busi = await startBusi();
});
afterAll(async () => {
  await busi.close();
});

interface Sample {
  gid: string;
  start: number;
  end: number;
  status: number;
  code: string | undefined;
}

async function submit(base: string, gid: string): Promise<Sample> {
  const start = performance.now();
  try {
    const res = await fetch(`${base}/api/dtmsvr/submit`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(sagaBody(gid, (s) => busi.url(s))), signal: AbortSignal.timeout(20_000),
    });
    const body = (await res.json().catch(() => ({}))) as { code?: string };
    return { gid, start, end: performance.now(), status: res.status, code: body.code };
  } catch {
    return { gid, start, end: performance.now(), status: 0, code: undefined };
  }
}

describe.each(OUTAGE_STORES)("a $name store whose open connections go silent for good (failover)", (c) => {
  it("drops the dead connections: failures are 503s within the timeout + 1 s and stop within a few timeouts; every acknowledged saga finishes", { timeout: 60_000 }, async () => {
    const area = await c.open("failover");
    const proxy = await TcpProxy.start(c.target());
    const dtx = await startCoordinator({
      store: { ...area.store((url) => TcpProxy.through(url, proxy)), timeout: STORE_TIMEOUT_S },
      retryInterval: 1, maxRetryInterval: 2, requestTimeout: 1, cronInterval: 0.2,
    });
    const samples: Promise<Sample>[] = [];
    let timer: NodeJS.Timeout | undefined;
    try {
      // Open several pooled connections first, so several go silent.
      const warm = await Promise.all(Array.from({ length: 20 }, (_, i) => submit(dtx.url, `failover-${c.name}-warm-${i}`)));
      expect(warm.map((s) => s.status)).toEqual(warm.map(() => 200));

      const failoverAt = performance.now();
      proxy.failover();
      let n = 0;
      timer = setInterval(() => samples.push(submit(dtx.url, `failover-${c.name}-${n++}`)), SUBMIT_EVERY_MS);
      await new Promise((resolve) => setTimeout(resolve, TRICKLE_MS));
      clearInterval(timer);
      const all = await Promise.all(samples);

      const failed = all.filter((s) => s.status !== 200);
      const lastFailureEnd = failed.reduce((t, s) => Math.max(t, s.end), failoverAt);
      const after = all.filter((s) => s.start > lastFailureEnd);
      process.stdout.write(`[store-failover] ${c.name}: ${all.length} submits after the failover, ${failed.length} failed, the last ending ${Math.round(lastFailureEnd - failoverAt)} ms after it; slowest ${Math.round(Math.max(...all.map((s) => s.end - s.start)))} ms\n`);

      expect(all.filter((s) => s.end - s.start > LIMIT_MS).map((s) => `${s.status} ${Math.round(s.end - s.start)} ms`), "slower than the timeout + 1 s").toEqual([]);
      expect(new Set(failed.map((s) => `${s.status} ${s.code}`)), "failures other than 503 STORE_UNAVAILABLE").toEqual(new Set(failed.length > 0 ? ["503 STORE_UNAVAILABLE"] : []));
      expect(lastFailureEnd - failoverAt, "failures went on too long after the failover").toBeLessThan(RECOVER_WITHIN_MS);
      expect(after.length, "submits after the last failure").toBeGreaterThan(20);

      // Every acknowledged saga finishes (bounded poll).
      let pending = [...warm, ...all].filter((s) => s.status === 200).map((s) => s.gid);
      const deadline = performance.now() + 10_000;
      while (pending.length > 0 && performance.now() < deadline) {
        const statuses = await Promise.all(pending.map(async (gid) => [gid, await dtx.client.status(gid).catch(() => "unreadable")] as const));
        pending = statuses.filter(([, s]) => s !== "succeed").map(([gid]) => gid);
        if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(pending, "acknowledged sagas not finished").toEqual([]);
    } finally {
      clearInterval(timer);
      await Promise.allSettled(samples);
      await dtx.stop();
      await proxy.close();
      await area.close();
    }
  });
});
