/**
 * The floor under a Node coordinator's latency: a server that answers dtm's `submit` of a saga by
 * calling each step's action in order through an undici Pool (as dtx's HTTP invoker does) and
 * then answering 200 {"dtm_result":"SUCCESS"}, with no store, no validation and no planning. What
 * `bench/saga-bench.ts --target` measures against it is what the HTTP round trips alone cost on
 * this machine (driver -> relay, relay -> participant twice); dtx's p50 minus this p50 is what the
 * coordinator adds (issue 16, "p50 within raw + 1 ms"). See bench/README.md, "The raw floor".
 *
 * Usage: node --import tsx bench/raw-relay.ts [port]   (0 / omitted = any free port)
 * Prints one JSON line {"msg":"raw relay listening","port":N,"pid":P} on stdout when ready.
 */
import { createServer } from "node:http";
import { Pool } from "undici";
import { serveForBench } from "./lib/serve.ts";

interface SagaSubmit {
  steps?: { action?: string }[];
  payloads?: string[];
}

const SUCCESS = Buffer.from('{"dtm_result":"SUCCESS"}');
const port = Number(process.argv[2] ?? 0);
const pools = new Map<string, Pool>();

function poolFor(origin: string): Pool {
  let pool = pools.get(origin);
  if (!pool) {
    pool = new Pool(origin, { connections: 128, pipelining: 1 });
    pools.set(origin, pool);
  }
  return pool;
}

async function callAction(url: string, body: string): Promise<void> {
  const target = new URL(url);
  const res = await poolFor(target.origin).request({
    path: `${target.pathname}${target.search}`, method: "POST", headers: { "content-type": "application/json" }, body,
  });
  await res.body.dump();
  if (res.statusCode !== 200) throw new Error(`branch answered ${res.statusCode}`);
}

async function relay(raw: string): Promise<void> {
  const saga = JSON.parse(raw) as SagaSubmit;
  const steps = saga.steps ?? [];
  for (const [i, step] of steps.entries()) {
    if (step.action) await callAction(step.action, saga.payloads?.[i] ?? "{}");
  }
}

const server = createServer((req, res) => {
  // saga-bench's readiness probe (dtm's newGid).
  if (req.method === "GET" && req.url?.endsWith("/newGid")) {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ gid: `raw-${process.hrtime.bigint()}`, dtm_result: "SUCCESS" }));
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    relay(Buffer.concat(chunks).toString("utf8")).then(
      () => {
        res.writeHead(200, { "content-type": "application/json", "content-length": SUCCESS.length });
        res.end(SUCCESS);
      },
      (error: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(error instanceof Error ? error.message : String(error));
      },
    );
  });
});
serveForBench(server, port, "raw relay listening", () => {
  for (const pool of pools.values()) void pool.close();
});
