/**
 * The Redis barrier (docs/protocol.md#redis-barrier): one Lua script checks the amount, the barrier key and
 * the origin key, and adjusts the amount, atomically.
 *
 * Caveat: every barrier key has a TTL (default 7 days). After it expires, or if Redis evicts it
 * under memory pressure (any `maxmemory-policy` other than `noeviction`), idempotency and
 * null-compensation / anti-hanging protection for that branch are gone. Run Redis with
 * `noeviction` and persistence (AOF), and choose an expiry longer than any transaction can live.
 * Keys are `<gid>-<branch_id>-<op>-<barrier_id>`, as dtm writes them; on Redis Cluster the amount
 * key and these keys must hash to one slot.
 */
import { BarrierError, barrierDuplicated, barrierFailure } from "./errors.ts";
import { MSG_BARRIER_ID, MSG_BRANCH_ID, MSG_OP } from "./sql.ts";
import type { BarrierResult, BranchInfo, RedisLike } from "./types.ts";

export const DEFAULT_REDIS_BARRIER_EXPIRE_SECONDS = 7 * 24 * 3600;

/** As dtm's RedisCheckAdjustAmount: cancel -> try and compensate -> action only. */
const REDIS_ORIGIN_OP: Readonly<Record<string, string>> = { cancel: "try", compensate: "action" };

/**
 * For cancel and compensate. KEYS[1] amount key, KEYS[2] this op's barrier key, KEYS[3] the
 * origin op's barrier key. ARGV[1] amount, ARGV[2] origin op, ARGV[3] expiry in seconds, ARGV[4] op.
 */
export const CHECK_ADJUST_AMOUNT_LUA = `-- dtx barrier: RedisCheckAdjustAmount (docs/protocol.md#redis-barrier)
local v = redis.call('GET', KEYS[1])
if v == false or tonumber(v) + tonumber(ARGV[1]) < 0 then
  return 'FAILURE'
end
-- SET NX: "if the key exists it is a duplicate, else set it", in one call
if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[3]) then
  return 'DUPLICATE'
end
if ARGV[2] ~= '' then
  -- the origin key was missing: null compensation, and it now blocks the late try/action
  if redis.call('SET', KEYS[3], 'rollback', 'NX', 'EX', ARGV[3]) then
    return 'NULL_COMPENSATION'
  end
end
redis.call('INCRBY', KEYS[1], ARGV[1])
return 'OK'
`;

/**
 * The same for every other op (try, confirm, action, msg...), which has no origin key: two keys
 * and three arguments to send and check instead of three and four.
 * KEYS[1] amount key, KEYS[2] this op's barrier key. ARGV[1] amount, ARGV[2] expiry, ARGV[3] op.
 */
export const CHECK_ADJUST_AMOUNT_NO_ORIGIN_LUA = `-- dtx barrier: RedisCheckAdjustAmount, op without origin (docs/protocol.md#redis-barrier)
local v = redis.call('GET', KEYS[1])
if v == false or tonumber(v) + tonumber(ARGV[1]) < 0 then
  return 'FAILURE'
end
if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[2]) then
  return 'DUPLICATE'
end
redis.call('INCRBY', KEYS[1], ARGV[1])
return 'OK'
`;

/** KEYS[1] the msg barrier key; ARGV[1] expiry in seconds. */
export const QUERY_PREPARED_LUA = `-- dtx barrier: RedisQueryPrepared (docs/protocol.md#redis-barrier)
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], 'rollback', 'EX', ARGV[1])
  v = 'rollback'
end
if v == 'rollback' then
  return 'FAILURE'
end
return 'OK'
`;

const CHECK_ADJUST = "dtxBarrierCheckAdjustAmount";
const CHECK_ADJUST_NO_ORIGIN = "dtxBarrierCheckAdjustAmountNoOrigin";
const QUERY_PREPARED = "dtxBarrierQueryPrepared";

type LuaCommand = (...args: (string | number)[]) => Promise<unknown>;

interface LuaCommands {
  checkAdjust: LuaCommand;
  checkAdjustNoOrigin: LuaCommand;
  queryPrepared: LuaCommand;
}

const defined = new WeakMap<object, LuaCommands>();

function commands(redis: RedisLike): LuaCommands {
  let c = defined.get(redis);
  if (c) return c;
  // defineCommand sends EVALSHA and falls back to EVAL (and caches the script) on NOSCRIPT.
  redis.defineCommand(CHECK_ADJUST, { numberOfKeys: 3, lua: CHECK_ADJUST_AMOUNT_LUA });
  redis.defineCommand(CHECK_ADJUST_NO_ORIGIN, { numberOfKeys: 2, lua: CHECK_ADJUST_AMOUNT_NO_ORIGIN_LUA });
  redis.defineCommand(QUERY_PREPARED, { numberOfKeys: 1, lua: QUERY_PREPARED_LUA });
  const r = redis as unknown as Record<string, LuaCommand>;
  const fns = [r[CHECK_ADJUST], r[CHECK_ADJUST_NO_ORIGIN], r[QUERY_PREPARED]];
  if (!fns.every((f) => typeof f === "function")) {
    throw new BarrierError("BARRIER_UNSUPPORTED_DB", "the Redis barrier needs an ioredis client (defineCommand)");
  }
  const [checkAdjust, checkAdjustNoOrigin, queryPrepared] = fns.map((f) => (f as LuaCommand).bind(redis)) as [LuaCommand, LuaCommand, LuaCommand];
  c = { checkAdjust, checkAdjustNoOrigin, queryPrepared };
  defined.set(redis, c);
  return c;
}

export function checkExpire(expireSeconds: number): number {
  if (!Number.isSafeInteger(expireSeconds) || expireSeconds <= 0) {
    throw new BarrierError("BARRIER_INVALID_PARAM", `Redis barrier expiry must be a positive whole number of seconds, got ${expireSeconds}`);
  }
  return expireSeconds;
}

export function redisBarrierKey(gid: string, branchId: string, op: string, barrierId: string): string {
  return `${gid}-${branchId}-${op}-${barrierId}`;
}

export async function redisCheckAdjustAmount(
  info: BranchInfo,
  barrierId: string,
  redis: RedisLike,
  key: string,
  amount: number,
  expireSeconds: number,
): Promise<BarrierResult<void>> {
  if (!Number.isSafeInteger(amount)) throw new BarrierError("BARRIER_INVALID_AMOUNT", `the Redis barrier adjusts integers only, got ${amount}`);
  const originOp = Object.hasOwn(REDIS_ORIGIN_OP, info.op) ? REDIS_ORIGIN_OP[info.op] : undefined;
  const bkey1 = redisBarrierKey(info.gid, info.branchId, info.op, barrierId);
  const expire = checkExpire(expireSeconds);
  const lua = commands(redis);
  const v =
    originOp === undefined
      ? await lua.checkAdjustNoOrigin(key, bkey1, amount, expire, info.op)
      : await lua.checkAdjust(key, bkey1, redisBarrierKey(info.gid, info.branchId, originOp, barrierId), amount, originOp, expire, info.op);
  switch (v) {
    case "OK":
      return { executed: true, value: undefined, barrierId };
    case "NULL_COMPENSATION":
      return { executed: false, skipped: "null_compensation", barrierId };
    case "DUPLICATE":
      if (info.op === MSG_OP) throw barrierDuplicated(`msg barrier for gid ${info.gid} already exists: the local transaction ran before or the check-back rolled it back`);
      return { executed: false, skipped: "duplicate_or_hanging", barrierId };
    case "FAILURE":
      throw barrierFailure(`${key} is missing or ${amount} would make it negative FAILURE`);
    default:
      throw new Error(`unexpected reply from the Redis barrier script: ${String(v)}`);
  }
}

export async function redisQueryPrepared(info: BranchInfo, redis: RedisLike, expireSeconds: number): Promise<void> {
  const bkey = redisBarrierKey(info.gid, MSG_BRANCH_ID, MSG_OP, MSG_BARRIER_ID);
  const v = await commands(redis).queryPrepared(bkey, checkExpire(expireSeconds));
  if (v === "FAILURE") throw barrierFailure(`msg ${info.gid} was rolled back FAILURE`);
  if (v !== "OK") throw new Error(`unexpected reply from the Redis check-back script: ${String(v)}`);
}
