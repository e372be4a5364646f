/**
 * What the branch barrier adds to a participant handler's local transaction, on PostgreSQL and on
 * Redis, at a fixed concurrency (closed loop: C workers each run a handler, await it, run again).
 *
 *   npx tsx bench/barrier-bench.ts [--seconds 5] [--warmup 1] [--rounds 3] [--concurrency 16]
 *                                  [--out bench/results]
 *
 * Handlers compared (each worker moves 1 unit on its own account, so workers do not contend):
 *   pg/plain        BEGIN; UPDATE accounts; COMMIT
 *   pg/action       the same through BranchBarrier.callWithPg, op "action" (one barrier INSERT,
 *                   sent with BEGIN in one multi-statement query)
 *   pg/action-sep   the same with { pgBatchBegin: false }: BEGIN and the INSERT as two round trips
 *   pg/plain-2      BEGIN; UPDATE accounts; INSERT ledger; COMMIT
 *   pg/action-2     the same through the barrier
 *   pg/compensate   pg/plain's business as a compensation after its action (origin + own INSERT)
 *   redis/plain     INCRBY
 *   redis/plain-lua a Lua script that checks the amount and INCRBYs (the barrier script minus its keys)
 *   redis/action    BranchBarrier.redisCheckAdjustAmount (one EVALSHA of the barrier script)
 * Round trips are counted at the driver (pg `query` calls, ioredis `sendCommand` calls). Phases
 * are interleaved over `--rounds` so that drift on a shared machine hits every phase alike.
 * Services: scripts/services.sh (or DTX_TEST_PG_URL / DTX_TEST_REDIS_URL).
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Redis } from "ioredis";
import { BranchBarrier, createBarrierTable } from "../sdk/src/barrier/index.ts";
import type { PgQueryable } from "../sdk/src/barrier/index.ts";
import { testServiceUrls } from "../test/helpers/services.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Options {
  seconds: number;
  warmup: number;
  rounds: number;
  concurrency: number;
  outDir: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 5, warmup: 1, rounds: 3, concurrency: 16, outDir: path.join(REPO_ROOT, "bench/results") };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = argv[i + 1];
    const num = (): number => {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${arg} needs a positive number`);
      i++;
      return n;
    };
    if (arg === "--seconds") o.seconds = num();
    else if (arg === "--warmup") o.warmup = num();
    else if (arg === "--rounds") o.rounds = Math.floor(num());
    else if (arg === "--concurrency") o.concurrency = Math.floor(num());
    else if (arg === "--out") {
      o.outDir = path.resolve(value ?? "");
      i++;
    } else throw new Error(`unknown argument ${arg}`);
  }
  return o;
}

const RUN = `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
const ACCOUNTS = "dtx_barrier_bench_accounts";
const LEDGER = "dtx_barrier_bench_ledger";

/** A handler run by one worker; `n` is unique per phase. Resolves to its driver round trips. */
type Handler = (worker: number, n: number) => Promise<number>;

interface Phase {
  /** Untimed set-up before each operation. */
  prepare?: (worker: number, n: number) => Promise<unknown>;
  run: Handler;
}

interface PhaseResult {
  name: string;
  ops: number;
  opsPerSec: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  roundTrips: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function runPhase(name: string, phase: Phase, concurrency: number, seconds: number): Promise<{ latencies: number[]; roundTrips: number; elapsed: number }> {
  const latencies: number[] = [];
  let roundTrips = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let seq = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < end) {
        const n = seq++;
        await phase.prepare?.(worker, n);
        const t0 = performance.now();
        const trips = await phase.run(worker, n);
        latencies.push((performance.now() - t0) * 1000);
        roundTrips += trips;
      }
    }),
  );
  if (latencies.length === 0) throw new Error(`${name}: no operation completed`);
  return { latencies, roundTrips, elapsed: (performance.now() - start) / 1000 };
}

function summarise(name: string, runs: { latencies: number[]; roundTrips: number; elapsed: number }[]): PhaseResult {
  const all = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const elapsed = runs.reduce((s, r) => s + r.elapsed, 0);
  const trips = runs.reduce((s, r) => s + r.roundTrips, 0);
  return {
    name,
    ops: all.length,
    opsPerSec: Math.round(all.length / elapsed),
    meanUs: Math.round(all.reduce((s, x) => s + x, 0) / all.length),
    p50Us: Math.round(percentile(all, 50)),
    p90Us: Math.round(percentile(all, 90)),
    p99Us: Math.round(percentile(all, 99)),
    roundTrips: Number((trips / all.length).toFixed(2)),
  };
}

/** Counts `query` calls on the clients a pool hands out. */
function counting(client: pg.PoolClient): { client: PgQueryable; count: () => number } {
  let n = 0;
  const wrapped: PgQueryable = {
    query: (text, values) => {
      n++;
      return client.query(text, values) as never;
    },
  };
  return { client: wrapped, count: () => n };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const urls = testServiceUrls();
  const pool = new pg.Pool({ connectionString: urls.pg, max: opts.concurrency });
  pool.on("error", () => {});
  const redis = new Redis(urls.redis, { maxRetriesPerRequest: 1 });
  let redisCommands = 0;
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((...args: Parameters<typeof send>) => {
    redisCommands++;
    return send(...args);
  }) as typeof redis.sendCommand;

  await createBarrierTable("postgres", pool);
  await pool.query(`create table if not exists ${ACCOUNTS}(id varchar(64) primary key, balance bigint not null)`);
  await pool.query(`create table if not exists ${LEDGER}(id bigserial primary key, account varchar(64) not null, ref varchar(128) not null, amount bigint not null, at timestamptz not null default now())`);
  for (let w = 0; w < opts.concurrency; w++) {
    await pool.query(`insert into ${ACCOUNTS}(id, balance) values($1, 1000000000) on conflict (id) do update set balance = excluded.balance`, [`${RUN}-${w}`]);
    await redis.set(`dtx-barrier-bench:${RUN}:${w}`, "1000000000", "EX", 3600);
  }

  redis.defineCommand("benchCheckAdjust", {
    numberOfKeys: 1,
    lua: "local v = redis.call('GET', KEYS[1]) if v == false or tonumber(v) + tonumber(ARGV[1]) < 0 then return 'FAILURE' end redis.call('INCRBY', KEYS[1], ARGV[1]) return 'OK'",
  });
  const business = (c: PgQueryable, worker: number): Promise<unknown> => c.query(`update ${ACCOUNTS} set balance = balance - 1 where id = $1`, [`${RUN}-${worker}`]);
  // a handler that also writes a ledger row: two statements
  const business2 = async (c: PgQueryable, worker: number, ref: string): Promise<void> => {
    await business(c, worker);
    await c.query(`insert into ${LEDGER}(account, ref, amount) values($1, $2, -1)`, [`${RUN}-${worker}`, ref]);
  };
  const inTx = async (fn: (c: PgQueryable) => Promise<unknown>): Promise<number> => {
    const raw = await pool.connect();
    const { client, count } = counting(raw);
    try {
      await client.query("BEGIN");
      await fn(client);
      await client.query("COMMIT");
    } catch (err) {
      await raw.query("ROLLBACK");
      throw err;
    } finally {
      raw.release();
    }
    return count();
  };
  const viaBarrier = async (bb: BranchBarrier, worker: number, two = false): Promise<number> => {
    const raw = await pool.connect();
    const { client, count } = counting(raw);
    try {
      // callWithPg on a (counting) client: BEGIN, barrier, business, COMMIT on that connection
      await bb.callWithPg(client, (c) => (two ? business2(c, worker, bb.gid) : business(c, worker)));
    } finally {
      raw.release();
    }
    return count();
  };
  const gid = (phase: number, worker: number, n: number): string => `bench-${RUN}-${phase}-${worker}-${n}`;
  const redisKey = (worker: number): string => `dtx-barrier-bench:${RUN}:${worker}`;
  // One ioredis client is shared by all workers, so its commands are counted per phase (total
  // commands / operations) rather than per call.
  const redisCounted = async (fn: () => Promise<unknown>): Promise<number> => {
    await fn();
    return 0;
  };

  let phaseNo = 0;
  const handlers: Record<string, Phase> = {
    "pg/plain": { run: (w) => inTx((c) => business(c, w)) },
    "pg/action": { run: (w, n) => viaBarrier(new BranchBarrier({ transType: "saga", gid: gid(phaseNo, w, n), branchId: "01", op: "action" }), w) },
    "pg/action-sep": {
      run: (w, n) => viaBarrier(new BranchBarrier({ transType: "saga", gid: gid(phaseNo, w, n), branchId: "01", op: "action" }, { pgBatchBegin: false }), w),
    },
    "pg/plain-2": { run: (w, n) => inTx((c) => business2(c, w, gid(phaseNo, w, n))) },
    "pg/action-2": { run: (w, n) => viaBarrier(new BranchBarrier({ transType: "saga", gid: gid(phaseNo, w, n), branchId: "01", op: "action" }), w, true) },
    "pg/compensate": {
      // the action ran before (untimed), so the compensation does its business: its origin
      // INSERT finds the action's row, its own INSERT adds one
      prepare: (w, n) =>
        pool.query("insert into dtm_barrier.barrier(trans_type, gid, branch_id, op, barrier_id, reason) values('saga', $1, '01', 'action', '01', 'action')", [gid(phaseNo, w, n)]),
      run: (w, n) => viaBarrier(new BranchBarrier({ transType: "saga", gid: gid(phaseNo, w, n), branchId: "01", op: "compensate" }), w),
    },
    "redis/plain": { run: (w) => redisCounted(() => redis.incrby(redisKey(w), -1)) },
    // the same check-and-adjust as the barrier script, without its barrier keys: what a handler
    // needs anyway to take an amount only when it is there
    "redis/plain-lua": { run: (w) => redisCounted(() => (redis as unknown as Record<string, (k: string, a: number) => Promise<unknown>>)["benchCheckAdjust"]!(redisKey(w), -1)) },
    "redis/action": {
      run: (w, n) =>
        redisCounted(() => new BranchBarrier({ transType: "saga", gid: gid(phaseNo, w, n), branchId: "01", op: "action" }).redisCheckAdjustAmount(redis, redisKey(w), -1, 600)),
    },
  };

  const names = Object.keys(handlers);
  const collected: Record<string, { latencies: number[]; roundTrips: number; elapsed: number }[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < opts.rounds; round++) {
    for (const name of round % 2 === 0 ? names : [...names].reverse()) {
      const phase = handlers[name]!;
      phaseNo++;
      await runPhase(name, phase, opts.concurrency, opts.warmup);
      phaseNo++;
      const before = redisCommands;
      const r = await runPhase(name, phase, opts.concurrency, opts.seconds);
      if (name.startsWith("redis/")) r.roundTrips = redisCommands - before;
      collected[name]!.push(r);
      process.stderr.write(`round ${round + 1}/${opts.rounds} ${name} done\n`);
    }
  }
  const results = names.map((n) => summarise(n, collected[n]!));
  const by = (n: string): PhaseResult => results.find((r) => r.name === n)!;
  const added = (base: string, withBarrier: string): Record<string, number> => {
    const plain = by(base);
    const b = by(withBarrier);
    return {
      extraRoundTrips: Number((b.roundTrips - plain.roundTrips).toFixed(2)),
      addedMeanPct: Number((((b.meanUs - plain.meanUs) / plain.meanUs) * 100).toFixed(1)),
      addedP50Pct: Number((((b.p50Us - plain.p50Us) / plain.p50Us) * 100).toFixed(1)),
      addedP99Pct: Number((((b.p99Us - plain.p99Us) / plain.p99Us) * 100).toFixed(1)),
      throughputPct: Number((((b.opsPerSec - plain.opsPerSec) / plain.opsPerSec) * 100).toFixed(1)),
    };
  };
  const report = {
    when: new Date().toISOString(),
    host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    options: opts,
    results,
    barrierCost: {
      "pg/action vs pg/plain": added("pg/plain", "pg/action"),
      "pg/action-sep vs pg/plain": added("pg/plain", "pg/action-sep"),
      "pg/action-2 vs pg/plain-2": added("pg/plain-2", "pg/action-2"),
      "pg/compensate vs pg/plain": added("pg/plain", "pg/compensate"),
      "redis/action vs redis/plain (INCRBY)": added("redis/plain", "redis/action"),
      "redis/action vs redis/plain-lua": added("redis/plain-lua", "redis/action"),
    },
    target: "at most one extra round trip and under 20% added latency (issue 7)",
  };

  console.log(`\nbarrier bench, C = ${opts.concurrency}, ${opts.rounds} x ${opts.seconds} s per handler\n`);
  console.log("handler          ops/s    mean µs   p50 µs   p90 µs   p99 µs   round trips");
  for (const r of results) {
    console.log(
      `${r.name.padEnd(15)} ${String(r.opsPerSec).padStart(6)} ${String(r.meanUs).padStart(10)} ${String(r.p50Us).padStart(8)} ${String(r.p90Us).padStart(8)} ${String(r.p99Us).padStart(8)} ${String(r.roundTrips).padStart(13)}`,
    );
  }
  console.log("\nwhat the barrier adds:");
  for (const [k, v] of Object.entries(report.barrierCost)) console.log(`  ${k.padEnd(14)} ${JSON.stringify(v)}`);

  mkdirSync(opts.outDir, { recursive: true });
  const stamp = report.when.replace(/[:.]/g, "-");
  writeFileSync(path.join(opts.outDir, `barrier-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(opts.outDir, "barrier-latest.json"), `${JSON.stringify(report, null, 2)}\n`);

  await pool.query("delete from dtm_barrier.barrier where gid like $1", [`bench-${RUN}-%`]);
  await pool.query(`delete from ${ACCOUNTS} where id like $1`, [`${RUN}-%`]);
  await pool.query(`delete from ${LEDGER} where account like $1`, [`${RUN}-%`]);
  await pool.end();
  redis.disconnect();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
