// The Mongo barrier against the Mongo stand-in (test/helpers/mongo.ts), or MONGODB_URI if set.
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import type { MongoClient } from "mongodb";
import { BranchBarrier, createMongoBarrierIndex, doAndSubmitDB } from "../src/barrier/index.ts";
import type { BarrierResult } from "../src/barrier/index.ts";
import { startMongo } from "../../test/helpers/mongo.ts";
import type { TestMongo } from "../../test/helpers/mongo.ts";
import { MONGO_DB, RUN, barrierFuzz, barrierScenarios, fuzzReport, info, mongoBusiness, mongoStore, raceReport, recordingMsg, uniqueGid } from "./barrier-helpers.ts";
import type { MongoAccount, MongoEffect, StoreUnderTest } from "./barrier-helpers.ts";

let mongo: TestMongo;
const clients: MongoClient[] = [];
let store: StoreUnderTest;

beforeAll(async () => {
  mongo = await startMongo();
  clients.push(await mongo.connect(), await mongo.connect());
  await createMongoBarrierIndex(clients[0]!);
  store = mongoStore({
    get: (conn) => clients[conn]!,
    async renew(conn) {
      // after a failed commit the stand-in may keep that server session's transaction open
      const old = clients[conn]!;
      clients[conn] = await mongo.connect();
      await old.close();
    },
    exclusive: mongo.exclusive,
  });
}, 60_000);

afterAll(async () => {
  if (fuzzReport.length > 0) process.stdout.write(`barrier fuzz: ${JSON.stringify(fuzzReport)}\n`);
  if (raceReport.length > 0) process.stdout.write(`barrier races (${mongo?.server}): ${JSON.stringify(raceReport)}\n`);
  await mongo?.stop();
});

// The stand-in copies the whole data set for every transaction, so each test starts without
// this run's earlier rows (every test uses its own gids and accounts).
beforeEach(async () => {
  const c = clients[0]!;
  const mine = { $regex: RUN };
  await Promise.all([
    c.db("dtm_barrier").collection("barrier").deleteMany({ gid: mine }),
    c.db(MONGO_DB).collection<MongoAccount>("accounts").deleteMany({ _id: mine }),
    c.db(MONGO_DB).collection<MongoEffect>("effects").deleteMany({ gid: mine }),
  ]);
});

describe("barrier on Mongo", () => {
  barrierScenarios(() => store);
  barrierFuzz(() => store, 300);

  it("createMongoBarrierIndex is idempotent and makes the unique index", async () => {
    await createMongoBarrierIndex(clients[0]!);
    const indexes = await clients[0]!.db("dtm_barrier").collection("barrier").indexes();
    expect(indexes.find((i) => i.name === "uniq_barrier")).toMatchObject({ key: { gid: 1, branch_id: 1, op: 1, barrier_id: 1 }, unique: true });
  });

  it("aborts the session transaction on an error (the stand-in does not abort on its own)", async () => {
    const gid = uniqueGid("mongo-abort");
    const c = clients[0]!;
    await c.db(MONGO_DB).collection<MongoAccount>("accounts").insertOne({ _id: `${gid}-a`, balance: 10 });
    const bb = new BranchBarrier(info(gid, "try"));
    await expect(
      bb.mongoCall(c, async (session) => {
        await mongoBusiness(c, session, bb, `${gid}-a`, -3);
        // a duplicate key inside the transaction
        await c.db("dtm_barrier").collection("barrier").insertOne({ gid, branch_id: "01", op: "try", barrier_id: "01" }, { session });
      }),
    ).rejects.toMatchObject({ code: 11000 });
    expect(await store.balance(`${gid}-a`)).toBe(10);
    expect(await store.barrierRows(gid)).toEqual([]);
  });

  it("doAndSubmitDB with a MongoClient", async () => {
    const { calls, msg } = recordingMsg();
    const c = clients[0]!;
    const gid = uniqueGid("mongo-das");
    await store.createAccount(`${gid}-a`, 10);
    await doAndSubmitDB(msg(gid), "qp", c, (session) => mongoBusiness(c, session, info(gid, "msg", "00", "msg"), `${gid}-a`, -4));
    const g2 = uniqueGid("mongo-das-err");
    await expect(
      doAndSubmitDB(msg(g2), "qp", c, async (session) => {
        await mongoBusiness(c, session, info(g2, "msg", "00", "msg"), `${gid}-a`, -4);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(calls).toEqual(["prepare", "submit", "prepare", "abort"]);
    expect(await store.balance(`${gid}-a`)).toBe(6);
    expect(await store.barrierRows(g2)).toEqual([{ branch_id: "00", op: "msg", barrier_id: "01", reason: "rollback" }]);
  });

  // The stand-in commits a transaction one collection at a time, in an order set by their names
  // (test/helpers/mongo.ts). With this barrier collection the business collections come first, so
  // a duplicate delivery whose barrier insert loses at commit has already written its effect.
  // A CI run whose random barrier database name fell that way once saw a branch applied twice.
  const LATE_BARRIER = "dtx_leak.barrier";

  async function removeLateBarrierRows(): Promise<void> {
    const [db, coll] = LATE_BARRIER.split(".") as [string, string];
    await clients[0]!.db(db).collection(coll).deleteMany({ gid: { $regex: RUN } });
  }

  async function duplicateDeliveries(gid: string, deliver: (bb: BranchBarrier, conn: 0 | 1) => Promise<BarrierResult<void>>): Promise<{ executed: number; effects: string[]; balance: number }> {
    await store.createAccount(`${gid}-a`, 100);
    // Both clients with a pooled connection open (a client renewed after an error has none), so
    // the two deliveries really start together.
    await Promise.all(([0, 1] as const).map((conn) => clients[conn]!.db(MONGO_DB).command({ ping: 1 })));
    const once = (conn: 0 | 1): Promise<BarrierResult<void> | "failed"> =>
      deliver(new BranchBarrier(info(gid, "action", "01", "saga"), { tableName: LATE_BARRIER }), conn).catch(async (err: unknown): Promise<"failed"> => {
        if (!store.isRetryable(err)) throw err;
        await store.afterRetryableError?.(conn);
        return "failed";
      });
    const results = [...(await Promise.all([once(0), once(1)])), ...(await Promise.all([once(0), once(1)]))];
    return {
      executed: results.filter((r) => r !== "failed" && r.executed).length,
      effects: await store.effects(gid),
      balance: await store.balance(`${gid}-a`),
    };
  }

  it("two deliveries of one action at the same instant, twice: applied once, whichever collection commits first", async () => {
    await createMongoBarrierIndex(clients[0]!, { tableName: LATE_BARRIER });
    onTestFinished(() => removeLateBarrierRows());
    for (let i = 0; i < 5; i++) {
      const seen = await duplicateDeliveries(uniqueGid(`mongo-dup-${i}`), (bb, conn) => store.adjust(bb, `${bb.gid}-a`, 10, { conn }));
      expect(seen).toEqual({ executed: 1, effects: ["action"], balance: 110 });
    }
  });

  it("without exclusive(), the stand-in leaves a losing duplicate's writes behind and a real Mongo does not", async () => {
    // Guards the workaround: the day the stand-in commits atomically this fails, and exclusive() can go.
    await createMongoBarrierIndex(clients[0]!, { tableName: LATE_BARRIER });
    onTestFinished(() => removeLateBarrierRows());
    let doubled = 0;
    for (let i = 0; i < 5; i++) {
      const seen = await duplicateDeliveries(uniqueGid(`mongo-dup-raw-${i}`), (bb, conn) => {
        const c = clients[conn]!;
        return bb.mongoCall(c, (session) => mongoBusiness(c, session, bb, `${bb.gid}-a`, 10));
      });
      expect(seen.executed).toBe(1);
      if (seen.effects.length === 2) doubled += 1;
    }
    // On the stand-in every pair tried so far leaked; one in five is enough to show it still does.
    if (mongo.standIn) expect(doubled).toBeGreaterThan(0);
    else expect(doubled).toBe(0);
  });
});
