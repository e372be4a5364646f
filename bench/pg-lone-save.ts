/**
 * A lone saveNewTrans on Postgres, the two ways the store can write it: the batch statement with a
 * batch of one (SAVE_NEW_TRANS, rows as arrays through unnest) and the statement for one call
 * (SAVE_NEW_TRANS_ONE, the trans row from scalar parameters). Both run as named prepared
 * statements on one connection, alternating in blocks of 300, on a schema of their own that is
 * dropped at the end; prints the p50 and p90 of each (bench/README.md, "Postgres parameters").
 *
 *   npx tsx bench/pg-lone-save.ts [--rounds 10] [--store-url postgres://...]
 */
import type pg from "pg";
import { DEFAULT_OPTIONS } from "../server/src/core/options.ts";
import type { NewBranch, NewTrans } from "../server/src/store/store.ts";
import { SAVE_NEW_TRANS, SAVE_NEW_TRANS_ONE, saveNewTransOneParams, saveNewTransParams } from "../server/src/store/sql/pg-hot-writes.ts";
import { migratedSchemaClient } from "./lib/pg-schema-client.ts";
import { percentile } from "./lib/util.ts";

const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const url = flag("--store-url", "postgres://postgres@127.0.0.1:5432/dtx_test");
const rounds = Number(flag("--rounds", "10"));
const BLOCK = 300;
const schema = `dtx_bench_lone_save_${process.pid}`;

const now = Date.now();
const trans = (gid: string): NewTrans => ({
  gid, transType: "saga", status: "submitted", protocol: "http", queryPrepared: "", customData: "", options: { ...DEFAULT_OPTIONS, branchHeaders: {} },
  extData: "", createTime: now, updateTime: now, finishTime: null, rollbackTime: null, rollbackReason: "", result: "", nextCronInterval: 10_000,
  nextCronTime: now + 10_000, owner: "bench-token",
});
const branches = (gid: string): NewBranch[] => ["01", "02"].flatMap((branchId) => (["compensate", "action"] as const).map((op) => ({
  gid, branchId, op, url: `http://127.0.0.1:8081/api/busi/${op}`, binData: Buffer.from("{}"), status: "prepared" as const,
  createTime: now, updateTime: now, finishTime: null,
})));

const ways: Record<string, (gid: string) => pg.QueryConfig> = {
  "batch statement, batch of one": (gid) => ({ name: "batch", text: SAVE_NEW_TRANS.text, values: saveNewTransParams([{ trans: trans(gid), branches: branches(gid) }]) }),
  "statement for one call": (gid) => ({ name: "one", text: SAVE_NEW_TRANS_ONE.text, values: saveNewTransOneParams(trans(gid), branches(gid)) }),
};

const client = await migratedSchemaClient(url, schema);
try {
  const times: Record<string, number[]> = {};
  let n = 0;
  // Round 0 warms both up (plans cached, JIT) and is not counted.
  for (let round = 0; round <= rounds; round++) {
    for (const [name, query] of Object.entries(ways)) {
      for (let i = 0; i < BLOCK; i++) {
        const start = process.hrtime.bigint();
        await client.query(query(`g${n++}`));
        if (round > 0) (times[name] ??= []).push(Number(process.hrtime.bigint() - start) / 1000);
      }
    }
  }
  for (const [name, xs] of Object.entries(times)) {
    const sorted = Float64Array.from(xs).sort();
    console.log(`${name.padEnd(32)} p50 ${percentile(sorted, 0.5).toFixed(0)} µs, p90 ${percentile(sorted, 0.9).toFixed(0)} µs (${xs.length} saves)`);
  }
} finally {
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}
