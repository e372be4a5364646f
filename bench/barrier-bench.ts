/**
 * What the branch barrier adds to a participant handler's local transaction, on PostgreSQL and on
 * Redis, at a fixed concurrency (closed loop: C workers each run a handler, await it, run again).
 *
 *   npx tsx bench/barrier-bench.ts [--seconds 5] [--warmup 1] [--rounds 3] [--concurrency 16]
 *                                  [--only pg/plain,pg/action] [--out bench/results]
 *
 * Handlers compared (each worker moves 1 unit on its own account, so workers do not contend; every
 * handler checks a connection out of a pg.Pool of C and returns it, as an HTTP handler would):
 *   pg/plain         BEGIN; UPDATE accounts; COMMIT
 *   pg/action        the same through BranchBarrier.callWithPg(pool), op "action": BEGIN and the
 *                    barrier INSERT (a prepared statement) in one query, on the table
 *                    createBarrierTable makes (the key is the primary key)
 *   pg/action-noprep the same with { pgPrepare: false }: the INSERT as SQL text, parsed every time
 *   pg/action-dtm    pg/action on a table made by dtm's DDL (serial id + unique key)
 *   pg/action-sep    pg/action with { pgBatchBegin: false }: BEGIN and the INSERT in two round trips
 *   pg/plain+stmt    not a baseline: pg/plain with `BEGIN;select 1` for BEGIN, i.e. a second statement
 *                    in the first query and nothing else, to show what that costs by itself
 *   pg/plain-2       BEGIN; UPDATE accounts; INSERT ledger; COMMIT (a handler that keeps a ledger)
 *   pg/action-2      the same through the barrier
 *   pg/compensate    pg/plain's business as a saga compensation whose action ran before (its
 *                    row is bulk-inserted before the phase): origin INSERT (conflicts) + own INSERT
 *   redis/plain      INCRBY
 *   redis/plain-lua  a handler's own Lua script doing the business: check the amount, INCRBY
 *   redis/action     BranchBarrier.redisCheckAdjustAmount (one EVALSHA of the barrier script)
 *   redis/plain-lua+set  not a baseline: plain-lua plus one SET NX EX of a new key, i.e. the one
 *                    write the barrier adds, to show what that write costs by itself
 *   pgbench/plain    not the SDK: Postgres' own pgbench (C, no Node), pg/plain's transaction
 *   pgbench/barrier  the same plus the barrier's INSERT, sent with BEGIN in one round trip as the SDK
 *                    does (as SQL text: pgbench cannot prepare it once per connection). What the
 *                    database itself charges for the barrier row. Skipped when pgbench is missing.
 * Round trips: pg `query` calls and ioredis `sendCommand` calls per handler run. CPU per handler
 * run: this process (`process.cpuUsage`), the database server (utime + stime in /proc of the
 * Postgres backends of this run's connections, or of `redis-server`), and "other": machine busy
 * time minus both, in % of the window (Postgres' WAL writer and checkpointer, the kernel, and
 * anything else running on the machine; a high value means a disturbed run).
 * Phases are interleaved over `--rounds` (the order flips every round) so that drift on a shared
 * machine hits every phase alike; "added" figures are given over the pooled samples and as the
 * median of the per-round figures. Barrier keys of a Redis phase are deleted after it (untimed),
 * so that the keyspace (and Redis' background saves) do not grow over the run.
 * Services: scripts/services.sh (or DTX_TEST_PG_URL / DTX_TEST_REDIS_URL).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Redis } from "ioredis";
import { BranchBarrier, createBarrierTable } from "../sdk/src/barrier/index.ts";
import type { BarrierOptions, PgQueryable } from "../sdk/src/barrier/index.ts";
import { testServiceUrls } from "../test/helpers/services.ts";
import { unlinkMatching } from "../test/helpers/store-areas.ts";
import { findPgbench, runPgbench } from "./lib/pgbench.ts";
import type { PgbenchRun } from "./lib/pgbench.ts";
import { median, percentile } from "./lib/util.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

interface Options {
  seconds: number;
  warmup: number;
  rounds: number;
  concurrency: number;
  only: string[] | undefined;
  outDir: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { seconds: 5, warmup: 1, rounds: 3, concurrency: 16, only: undefined, outDir: path.join(REPO_ROOT, "bench/results") };
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
    else if (arg === "--only") {
      o.only = (value ?? "").split(",").filter(Boolean);
      i++;
    } else if (arg === "--out") {
      o.outDir = path.resolve(value ?? "");
      i++;
    } else throw new Error(`unknown argument ${arg}`);
  }
  return o;
}

const RUN = `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
const SCHEMA = "dtx_barrier_bench";
const BARRIER = `${SCHEMA}.barrier`;
const BARRIER_DTM = `${SCHEMA}.barrier_dtm`;
const ACCOUNTS = `${SCHEMA}.accounts`;
const LEDGER = `${SCHEMA}.ledger`;
/** Action rows bulk-inserted before each pg/compensate phase, per second of it (more than it can use). */
const COMPENSATE_ROWS_PER_SECOND = 8_000;

interface Phase {
  /** Untimed, before the phase starts (no worker is running). */
  setup?: (phaseNo: number, seconds: number) => Promise<unknown>;
  /** Untimed, after the phase ended. */
  teardown?: (phaseNo: number) => Promise<unknown>;
  /** The gid of the phase's n-th handler run; default {@link benchGid}. */
  gid?: (phaseNo: number, n: number) => string;
  run: (worker: number, gid: string) => Promise<unknown>;
}

/** shortuuid's alphabet, as in dtm's and the SDK's gids. */
const GID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/**
 * Random like real gids (22 characters of shortuuid's alphabet), so that barrier rows land all
 * over the key's B-tree as they do in production, then the phase and the run (to find them
 * again). Math.random, not crypto: the driver's own CPU would otherwise dilute what it measures.
 */
function benchGid(phaseNo: number): string {
  let g = "";
  for (let i = 0; i < 22; i++) g += GID_ALPHABET[Math.floor(Math.random() * GID_ALPHABET.length)];
  return `${g}-${phaseNo}-${RUN}`;
}

interface Run {
  latencies: number[];
  elapsed: number;
  /** driver round trips */
  trips: number;
  clientCpuUs: number;
  serverCpuUs: number;
  busyUs: number;
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
  clientCpuUsPerOp: number;
  serverCpuUsPerOp: number;
  otherCpuPct: number;
  perRoundMeanUs: number[];
}

// ------------------------------------------------------------------------------------------------
// CPU accounting from /proc (Linux); zeros elsewhere.

const TICK_US = 1e6 / 100; // USER_HZ

function pidsNamed(name: string): number[] {
  try {
    return readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === name;
        } catch {
          return false;
        }
      });
  } catch {
    return [];
  }
}

function cpuOfPids(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // exited
    }
  }
  return ticks * TICK_US;
}

/** Busy (non-idle, non-iowait) time of the whole machine, µs summed over cores. */
function machineBusyUs(): number {
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    const total = f.slice(0, 8).reduce((s, x) => s + x, 0);
    return (total - (f[3] ?? 0) - (f[4] ?? 0)) * TICK_US;
  } catch {
    return 0;
  }
}

// ------------------------------------------------------------------------------------------------

async function runPhase(phase: Phase, concurrency: number, seconds: number, trips: () => number, serverCpu: () => number, phaseNo: number): Promise<Run> {
  await phase.setup?.(phaseNo, seconds);
  const latencies: number[] = [];
  let seq = 0;
  const trips0 = trips();
  const cpu0 = process.cpuUsage();
  const server0 = serverCpu();
  const busy0 = machineBusyUs();
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < end) {
        const n = seq++;
        const gid = phase.gid ? phase.gid(phaseNo, n) : benchGid(phaseNo);
        const t0 = performance.now();
        await phase.run(worker, gid);
        latencies.push((performance.now() - t0) * 1000);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const run: Run = {
    latencies,
    elapsed,
    trips: trips() - trips0,
    clientCpuUs: cpu.user + cpu.system,
    serverCpuUs: serverCpu() - server0,
    busyUs: machineBusyUs() - busy0,
  };
  await phase.teardown?.(phaseNo);
  if (latencies.length === 0) throw new Error("no operation completed");
  return run;
}

function summarise(name: string, runs: Run[], cores: number): PhaseResult {
  const all = Float64Array.from(runs.flatMap((r) => r.latencies)).sort();
  const sum = (f: (r: Run) => number): number => runs.reduce((s, r) => s + f(r), 0);
  const ops = all.length;
  const elapsed = sum((r) => r.elapsed);
  const client = sum((r) => r.clientCpuUs);
  const server = sum((r) => r.serverCpuUs);
  return {
    name,
    ops,
    opsPerSec: Math.round(ops / elapsed),
    meanUs: Math.round(all.reduce((s, x) => s + x, 0) / ops),
    p50Us: Math.round(percentile(all, 0.5)),
    p90Us: Math.round(percentile(all, 0.9)),
    p99Us: Math.round(percentile(all, 0.99)),
    roundTrips: Number((sum((r) => r.trips) / ops).toFixed(2)),
    clientCpuUsPerOp: Number((client / ops).toFixed(1)),
    serverCpuUsPerOp: Number((server / ops).toFixed(1)),
    otherCpuPct: Math.round(((sum((r) => r.busyUs) - client - server) / (elapsed * 1e6 * cores)) * 100),
    perRoundMeanUs: runs.map((r) => Math.round(r.latencies.reduce((s, x) => s + x, 0) / r.latencies.length)),
  };
}

const pct = (b: number, a: number): number => Number((((b - a) / a) * 100).toFixed(1));

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const urls = testServiceUrls();
  const cores = os.cpus().length;

  // -- Postgres: a pool of C, every query counted
  // idle connections are kept (with their prepared statement) for the whole run
  const pool = new pg.Pool({ connectionString: urls.pg, max: opts.concurrency, idleTimeoutMillis: 0 });
  pool.on("error", () => {});
  let pgQueries = 0;
  const counted = new WeakSet<object>();
  /** The server processes of this run's connections: other sessions on the server are not counted. */
  const backends = new Set<number>();
  pool.on("connect", (client) => {
    if (counted.has(client)) return;
    counted.add(client);
    const pid = (client as unknown as { processID?: unknown }).processID;
    if (typeof pid === "number") backends.add(pid);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      pgQueries++;
      return query(...args);
    };
  });
  const postgresCpu = (): number => cpuOfPids([...backends]);

  await pool.query(`drop schema if exists ${SCHEMA} cascade`);
  await createBarrierTable("postgres", pool, { tableName: BARRIER });
  // dtm's sqls/dtmcli.barrier.postgres.sql
  await pool.query(`create sequence ${BARRIER_DTM}_seq`);
  await pool.query(
    `create table ${BARRIER_DTM}(id bigint NOT NULL DEFAULT NEXTVAL ('${BARRIER_DTM}_seq'), trans_type varchar(45) default '', gid varchar(128) default '', ` +
      "branch_id varchar(128) default '', op varchar(45) default '', barrier_id varchar(45) default '', reason varchar(45) default '', " +
      "create_time timestamp(0) with time zone DEFAULT NULL, update_time timestamp(0) with time zone DEFAULT NULL, PRIMARY KEY(id), " +
      "CONSTRAINT uniq_barrier_dtm unique(gid, branch_id, op, barrier_id))",
  );
  await pool.query(`create table ${ACCOUNTS}(id varchar(64) primary key, balance bigint not null)`);
  await pool.query(`create table ${LEDGER}(id bigserial primary key, account varchar(64) not null, ref varchar(128) not null, amount bigint not null, at timestamptz not null default now())`);
  await pool.query(`insert into ${ACCOUNTS}(id, balance) select 'acct-' || w, 1000000000 from generate_series(0, $1::int - 1) w`, [opts.concurrency]);

  // -- Redis: one client shared by the workers (ioredis pipelines their commands), counted
  const redis = new Redis(urls.redis, { maxRetriesPerRequest: 1 });
  let redisCommands = 0;
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((...args: Parameters<typeof send>) => {
    redisCommands++;
    return send(...args);
  }) as typeof redis.sendCommand;
  const redisPids = pidsNamed("redis-server");
  const redisCpu = (): number => cpuOfPids(redisPids);
  const redisKey = (worker: number): string => `dtx-barrier-bench:${RUN}:${worker}`;
  for (let w = 0; w < opts.concurrency; w++) await redis.set(redisKey(w), "1000000000", "EX", 3600);
  const PLAIN_LUA = "local v = redis.call('GET', KEYS[1]) if v == false or tonumber(v) + tonumber(ARGV[1]) < 0 then return 'FAILURE' end";
  redis.defineCommand("benchCheckAdjust", { numberOfKeys: 1, lua: `${PLAIN_LUA} redis.call('INCRBY', KEYS[1], ARGV[1]) return 'OK'` });
  redis.defineCommand("benchCheckAdjustSet", {
    numberOfKeys: 2,
    lua: `${PLAIN_LUA} if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[2]) then return 'DUPLICATE' end redis.call('INCRBY', KEYS[1], ARGV[1]) return 'OK'`,
  });
  const lua = redis as unknown as Record<string, (...args: (string | number)[]) => Promise<unknown>>;
  const deleteKeys = (pattern: string): Promise<void> => unlinkMatching(redis, pattern);

  // -- handlers
  const acct = (worker: number): string => `acct-${worker}`;
  const business = (c: PgQueryable, worker: number): Promise<unknown> => c.query(`update ${ACCOUNTS} set balance = balance - 1 where id = $1`, [acct(worker)]);
  const business2 = async (c: PgQueryable, worker: number, ref: string): Promise<void> => {
    await business(c, worker);
    await c.query(`insert into ${LEDGER}(account, ref, amount) values($1, $2, -1)`, [acct(worker), ref]);
  };
  const inTx = async (fn: (c: PgQueryable) => Promise<unknown>, begin = "BEGIN"): Promise<void> => {
    const client = await pool.connect();
    try {
      await client.query(begin);
      await fn(client);
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK");
      throw err;
    } finally {
      client.release();
    }
  };
  const barrier = (gid: string, op: string, options: BarrierOptions = {}): BranchBarrier =>
    new BranchBarrier({ transType: "saga", gid, branchId: "01", op }, { tableName: BARRIER, ...options });
  const action = (options: BarrierOptions = {}): Phase => ({ run: (w, gid) => barrier(gid, "action", options).callWithPg(pool, (c) => business(c, w)) });

  let compensateGids: string[] = [];
  const handlers: Record<string, Phase> = {
    "pg/plain": { run: (w) => inTx((c) => business(c, w)) },
    "pg/plain+stmt": { run: (w) => inTx((c) => business(c, w), "BEGIN;select 1") },
    "pg/action": action(),
    "pg/action-noprep": action({ pgPrepare: false }),
    "pg/action-dtm": action({ tableName: BARRIER_DTM }),
    "pg/action-sep": action({ pgBatchBegin: false }),
    "pg/plain-2": { run: (w, gid) => inTx((c) => business2(c, w, gid)) },
    "pg/action-2": { run: (w, gid) => barrier(gid, "action").callWithPg(pool, (c) => business2(c, w, gid)) },
    "pg/compensate": {
      // the actions ran before: their rows are there, so every compensation does its business
      setup: async (phaseNo, seconds) => {
        compensateGids = Array.from({ length: Math.ceil(seconds * COMPENSATE_ROWS_PER_SECOND) }, () => benchGid(phaseNo));
        await pool.query(
          `insert into ${BARRIER}(trans_type, gid, branch_id, op, barrier_id, reason, create_time, update_time) ` +
            "select 'saga', g, '01', 'action', '01', 'action', now(), now() from unnest($1::text[]) g",
          [compensateGids],
        );
      },
      gid: (phaseNo, n) => compensateGids[n] ?? benchGid(phaseNo),
      run: (w, gid) => barrier(gid, "compensate").callWithPg(pool, (c) => business(c, w)),
    },
    "redis/plain": { run: (w) => redis.incrby(redisKey(w), -1) },
    "redis/plain-lua": { run: (w) => lua["benchCheckAdjust"]!(redisKey(w), -1) },
    "redis/action": {
      run: (w, gid) => barrier(gid, "action").redisCheckAdjustAmount(redis, redisKey(w), -1, 600),
      teardown: (phaseNo) => deleteKeys(`*-${phaseNo}-${RUN}-*`),
    },
    "redis/plain-lua+set": {
      run: (w, gid) => lua["benchCheckAdjustSet"]!(redisKey(w), `${gid}-01-action-01`, -1, 600, "action"),
      teardown: (phaseNo) => deleteKeys(`*-${phaseNo}-${RUN}-*`),
    },
  };

  const names = Object.keys(handlers).filter((n) => !opts.only || opts.only.includes(n));
  const collected: Record<string, Run[]> = Object.fromEntries(names.map((n) => [n, []]));
  let phaseNo = 0;
  for (let round = 0; round < opts.rounds; round++) {
    for (const name of round % 2 === 0 ? names : [...names].reverse()) {
      const phase = handlers[name]!;
      const isRedis = name.startsWith("redis/");
      const trips = isRedis ? () => redisCommands : () => pgQueries;
      const serverCpu = isRedis ? redisCpu : postgresCpu;
      await runPhase(phase, opts.concurrency, opts.warmup, trips, serverCpu, ++phaseNo);
      collected[name]!.push(await runPhase(phase, opts.concurrency, opts.seconds, trips, serverCpu, ++phaseNo));
      process.stderr.write(`round ${round + 1}/${opts.rounds} ${name} done\n`);
    }
  }
  const pgbench = await pgbenchReference(opts, urls.pg);
  const results = names.map((n) => summarise(n, collected[n]!, cores));
  const by = (n: string): PhaseResult | undefined => results.find((r) => r.name === n);
  const added = (base: string, withBarrier: string): Record<string, number | number[]> | undefined => {
    const a = by(base);
    const b = by(withBarrier);
    if (!a || !b) return undefined;
    const perRound = b.perRoundMeanUs.map((x, i) => pct(x, a.perRoundMeanUs[i] ?? NaN));
    return {
      extraRoundTrips: Number((b.roundTrips - a.roundTrips).toFixed(2)),
      addedMeanPct: pct(b.meanUs, a.meanUs),
      addedMeanPctPerRound: perRound,
      addedMeanPctMedianOfRounds: Number(median(perRound).toFixed(1)),
      addedP50Pct: pct(b.p50Us, a.p50Us),
      addedP99Pct: pct(b.p99Us, a.p99Us),
      throughputPct: pct(b.opsPerSec, a.opsPerSec),
      addedCpuUsPerOp: Number((b.clientCpuUsPerOp + b.serverCpuUsPerOp - a.clientCpuUsPerOp - a.serverCpuUsPerOp).toFixed(1)),
      addedClientCpuUsPerOp: Number((b.clientCpuUsPerOp - a.clientCpuUsPerOp).toFixed(1)),
      addedServerCpuUsPerOp: Number((b.serverCpuUsPerOp - a.serverCpuUsPerOp).toFixed(1)),
    };
  };
  const comparisons: [string, string, string][] = [
    ["pg/action-2 vs pg/plain-2 (headline: UPDATE + ledger INSERT)", "pg/plain-2", "pg/action-2"],
    ["pg/action vs pg/plain (one UPDATE)", "pg/plain", "pg/action"],
    ["pg/action-noprep vs pg/plain", "pg/plain", "pg/action-noprep"],
    ["pg/action-dtm vs pg/plain", "pg/plain", "pg/action-dtm"],
    ["pg/action-sep vs pg/plain", "pg/plain", "pg/action-sep"],
    ["pg/compensate vs pg/plain", "pg/plain", "pg/compensate"],
    ["pg/plain+stmt vs pg/plain (a second statement alone)", "pg/plain", "pg/plain+stmt"],
    ["redis/action vs redis/plain-lua (headline)", "redis/plain-lua", "redis/action"],
    ["redis/action vs redis/plain (INCRBY)", "redis/plain", "redis/action"],
    ["redis/plain-lua+set vs redis/plain-lua (the key write alone)", "redis/plain-lua", "redis/plain-lua+set"],
    ["redis/action vs redis/plain-lua+set", "redis/plain-lua+set", "redis/action"],
  ];
  const barrierCost = Object.fromEntries(comparisons.flatMap(([label, a, b]) => {
    const v = added(a, b);
    return v ? [[label, v]] : [];
  }));
  const report = {
    when: new Date().toISOString(),
    host: { cpus: cores, model: os.cpus()[0]?.model, node: process.version, postgres: (await pool.query<{ v: string }>("show server_version")).rows[0]?.v, redis: redisVersion() },
    command: `npx tsx bench/barrier-bench.ts ${process.argv.slice(2).join(" ")}`.trim(),
    options: opts,
    results,
    barrierCost,
    pgbench,
    target: "at most one extra round trip and under 20% added latency at C = 16 (issue 7)",
  };

  console.log(`\nbarrier bench, C = ${opts.concurrency}, ${opts.rounds} x ${opts.seconds} s per handler\n`);
  console.log("handler               ops/s   mean µs   p50 µs   p99 µs  trips  client µs/op  server µs/op  other CPU %");
  for (const r of results) {
    console.log(
      `${r.name.padEnd(20)} ${String(r.opsPerSec).padStart(6)} ${String(r.meanUs).padStart(9)} ${String(r.p50Us).padStart(8)} ${String(r.p99Us).padStart(8)} ${String(r.roundTrips).padStart(6)} ` +
        `${String(r.clientCpuUsPerOp).padStart(12)} ${String(r.serverCpuUsPerOp).padStart(13)} ${String(r.otherCpuPct).padStart(12)}`,
    );
  }
  console.log("\nwhat the barrier adds (mean latency: pooled, and median of the per-round figures):");
  for (const [k, v] of Object.entries(barrierCost)) {
    console.log(`  ${k}\n    +${String(v["extraRoundTrips"])} round trips, mean ${String(v["addedMeanPct"])}% (rounds ${JSON.stringify(v["addedMeanPctPerRound"])}, median ${String(v["addedMeanPctMedianOfRounds"])}%), p50 ${String(v["addedP50Pct"])}%, p99 ${String(v["addedP99Pct"])}%, CPU ${String(v["addedCpuUsPerOp"])} µs/op (client ${String(v["addedClientCpuUsPerOp"])}, server ${String(v["addedServerCpuUsPerOp"])})`);
  }

  if (pgbench) {
    const [plain, withBarrier] = [pgbench.runs["pgbench/plain"], pgbench.runs["pgbench/barrier"]];
    console.log(`\npgbench (C client, no Node), mean latency per round: plain ${JSON.stringify(plain?.map((r) => r.latencyUs))} µs, with the barrier's INSERT ${JSON.stringify(withBarrier?.map((r) => r.latencyUs))} µs`);
    console.log(`  added: rounds ${JSON.stringify(pgbench.addedMeanPctPerRound)}, median ${String(pgbench.addedMeanPctMedianOfRounds)}%`);
  }

  mkdirSync(opts.outDir, { recursive: true });
  const stamp = report.when.replace(/[:.]/g, "-");
  writeFileSync(path.join(opts.outDir, `barrier-${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(opts.outDir, "barrier-latest.json"), `${JSON.stringify(report, null, 2)}\n`);

  await pool.query(`drop schema if exists ${SCHEMA} cascade`);
  await pool.end();
  await deleteKeys(`*-${RUN}-*`);
  await redis.del(...Array.from({ length: opts.concurrency }, (_, w) => redisKey(w)));
  redis.disconnect();
}

const PGBENCH_SCRIPTS: Readonly<Record<string, string>> = {
  "pgbench/plain": `BEGIN;\nupdate ${ACCOUNTS} set balance = balance - 1 where id = 'acct-' || :client_id;\nCOMMIT;\n`,
  "pgbench/barrier":
    "\\set r random(1, 9223372036854775806)\nBEGIN \\;\n" +
    `insert into ${BARRIER}(trans_type, gid, branch_id, op, barrier_id, reason, create_time, update_time) values('saga', 'pgbench-:r-${RUN}', '01', 'action', '01', 'action', now(), now()) on conflict (gid, branch_id, op, barrier_id) do nothing;\n` +
    `update ${ACCOUNTS} set balance = balance - 1 where id = 'acct-' || :client_id;\nCOMMIT;\n`,
};

/** pg/plain's transaction with and without the barrier's SQL, run by pgbench in interleaved rounds. */
async function pgbenchReference(opts: Options, url: string): Promise<{ runs: Record<string, PgbenchRun[]>; addedMeanPctPerRound: number[]; addedMeanPctMedianOfRounds: number } | undefined> {
  const names = Object.keys(PGBENCH_SCRIPTS).filter((n) => !opts.only || opts.only.includes(n));
  if (names.length === 0) return undefined;
  const bin = findPgbench();
  if (!bin) {
    process.stderr.write("pgbench not found: skipping the pgbench reference\n");
    return undefined;
  }
  const runs: Record<string, PgbenchRun[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < opts.rounds; round++) {
    for (const name of round % 2 === 0 ? names : [...names].reverse()) {
      await runPgbench(bin, url, PGBENCH_SCRIPTS[name]!, opts.concurrency, opts.warmup);
      runs[name]!.push(await runPgbench(bin, url, PGBENCH_SCRIPTS[name]!, opts.concurrency, opts.seconds));
      process.stderr.write(`round ${round + 1}/${opts.rounds} ${name} done\n`);
    }
  }
  const plain = runs["pgbench/plain"] ?? [];
  const withBarrier = runs["pgbench/barrier"] ?? [];
  const perRound = withBarrier.map((r, i) => pct(r.latencyUs, plain[i]?.latencyUs ?? NaN));
  return { runs, addedMeanPctPerRound: perRound, addedMeanPctMedianOfRounds: Number(median(perRound).toFixed(1)) };
}

function redisVersion(): string | undefined {
  try {
    return /v=(\S+)/.exec(execFileSync("redis-server", ["--version"], { encoding: "utf8" }))?.[1];
  } catch {
    return undefined;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
