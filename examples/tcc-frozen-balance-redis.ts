/**
 * TCC with balances in Redis: a group payment where Alice and Bob each pay `amount` to Carol.
 * Every account is a key pair `<account>:available` / `<account>:frozen`, changed only through
 * the barrier's `redisCheckAdjustAmount` (one Lua script: at most once per branch op, never below
 * zero, and a Cancel that arrives before its Try blocks the late Try).
 *
 * - Try (payer): available -= amount, frozen += amount. Refused (FAILURE) when available is short.
 * - Confirm (payer): frozen -= amount: the money leaves for good.
 * - Cancel (payer): available += amount, frozen -= amount: the freeze is released.
 * - Try / Confirm / Cancel (payee): check the account / available += amount / nothing.
 *
 * Run 1 (30 each) confirms everything. Run 2 (30 each again) freezes Alice's 30, then Bob's Try
 * finds only 20 available: the TCC aborts, the coordinator cancels Alice's freeze (and Bob's
 * branch, a null compensation), and every balance is back where run 1 left it.
 *
 *   npm start
 *   npx tsx examples/tcc-frozen-balance-redis.ts   # REDIS_URL defaults to redis://127.0.0.1:6379
 */
import type { FastifyRequest } from "fastify";
import { Redis } from "ioredis";
import { BranchBarrier, DtxClient, DtxFailure, fastifyHandler, isFailure, tccGlobalTransaction } from "../sdk/src/index.ts";
import type { ExampleOptions } from "./lib/common.ts";
import { isMain, messageOf, removeRunKeys, runMain, startService, statusOf, uniqueName } from "./lib/common.ts";

export interface Account {
  readonly available: number;
  readonly frozen: number;
}

export interface Balances {
  readonly alice: Account;
  readonly bob: Account;
  readonly carol: Account;
}

export interface TccOutcome {
  readonly gid: string;
  /** The coordinator's final status: `succeed` or `failed`. */
  readonly status: string;
  /** Why the TCC was aborted (the failed Try's answer); undefined on success. */
  readonly error?: string;
  readonly balances: Balances;
}

export interface TccFrozenBalanceResult {
  readonly initial: Balances;
  readonly payment: TccOutcome;
  readonly insufficientFunds: TccOutcome;
}

interface Body {
  account: string;
  amount: number;
}

const NAMES = ["alice", "bob", "carol"] as const;
const INITIAL: Readonly<Record<(typeof NAMES)[number], number>> = { alice: 100, bob: 50, carol: 0 };
const EXPIRE_SECONDS = 3600;

export async function run(opts: ExampleOptions): Promise<TccFrozenBalanceResult> {
  const prefix = uniqueName("ex_tcc");
  const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 1 });
  /** The transactions run, whose barrier keys are removed at the end. */
  const gids: string[] = [];
  const client = new DtxClient({ server: opts.dtxUrl });
  const key = (account: string, part: "available" | "frozen"): string => `${prefix}:${account}:${part}`;
  let service: { close(): Promise<void> } | undefined;
  try {
    for (const name of NAMES) await redis.mset(key(name, "available"), INITIAL[name], key(name, "frozen"), 0);

    const barrier = (req: FastifyRequest): BranchBarrier => BranchBarrier.fromQuery(req.query as Record<string, unknown>);
    const svc = await startService((app) => {
      // Payer. The barrier numbers its calls 01, 02 within one op; Cancel's 01 pairs with Try's 01.
      app.post("/TransOutTry", fastifyHandler(async (req: FastifyRequest) => {
        const { account, amount } = req.body as Body;
        const bb = barrier(req);
        // FAILURE (409) when available < amount; skipped when Cancel already ran (hanging Try).
        const taken = await bb.redisCheckAdjustAmount(redis, key(account, "available"), -amount, EXPIRE_SECONDS);
        if (taken.executed) await bb.redisCheckAdjustAmount(redis, key(account, "frozen"), amount, EXPIRE_SECONDS);
      }));
      app.post("/TransOutConfirm", fastifyHandler(async (req: FastifyRequest) => {
        const { account, amount } = req.body as Body;
        await barrier(req).redisCheckAdjustAmount(redis, key(account, "frozen"), -amount, EXPIRE_SECONDS);
      }));
      app.post("/TransOutCancel", fastifyHandler(async (req: FastifyRequest) => {
        const { account, amount } = req.body as Body;
        const bb = barrier(req);
        const released = await bb.redisCheckAdjustAmount(redis, key(account, "available"), amount, EXPIRE_SECONDS);
        // Null compensation: the Try never took anything (refused, or not arrived yet), so nothing is frozen.
        if (released.executed || released.skipped === "duplicate_or_hanging") {
          await bb.redisCheckAdjustAmount(redis, key(account, "frozen"), -amount, EXPIRE_SECONDS);
        }
      }));
      // Payee.
      app.post("/TransInTry", fastifyHandler(async (req: FastifyRequest) => {
        const { account } = req.body as Body;
        if ((await redis.exists(key(account, "available"))) === 0) throw new DtxFailure(`no account ${account}`);
      }));
      app.post("/TransInConfirm", fastifyHandler(async (req: FastifyRequest) => {
        const { account, amount } = req.body as Body;
        await barrier(req).redisCheckAdjustAmount(redis, key(account, "available"), amount, EXPIRE_SECONDS);
      }));
      app.post("/TransInCancel", fastifyHandler(() => undefined));
    });
    service = svc;

    const account = async (name: string): Promise<Account> => {
      const [available, frozen] = await redis.mget(key(name, "available"), key(name, "frozen"));
      return { available: Number(available), frozen: Number(frozen) };
    };
    const balances = async (): Promise<Balances> => ({ alice: await account("alice"), bob: await account("bob"), carol: await account("carol") });

    const pay = async (amount: number): Promise<TccOutcome> => {
      const gid = uniqueName("tcc");
      gids.push(gid);
      const u = (path: string): string => `${svc.url}/${path}`;
      let error: string | undefined;
      try {
        await tccGlobalTransaction(client, gid, async (tcc) => {
          await tcc.callBranch({ account: "alice", amount }, u("TransOutTry"), u("TransOutConfirm"), u("TransOutCancel"));
          await tcc.callBranch({ account: "bob", amount }, u("TransOutTry"), u("TransOutConfirm"), u("TransOutCancel"));
          await tcc.callBranch({ account: "carol", amount: 2 * amount }, u("TransInTry"), u("TransInConfirm"), u("TransInCancel"));
        }, { waitResult: true });
      } catch (err) {
        if (!isFailure(err)) throw err;
        error = messageOf(err);
      }
      return { gid, status: await statusOf(client, gid), ...(error === undefined ? {} : { error }), balances: await balances() };
    };

    const initial = await balances();
    const payment = await pay(30);
    const insufficientFunds = await pay(30);
    return { initial, payment, insufficientFunds };
  } finally {
    await service?.close();
    await client.close();
    await removeRunKeys(redis, [`${prefix}:`], gids);
    redis.disconnect();
  }
}

if (isMain(import.meta.url)) await runMain(run);
