/**
 * The branch barrier: makes participant (RM) handlers safe against duplicate requests, null
 * compensation and hanging, on Postgres, MySQL/MariaDB, Kysely, Mongo and Redis (docs/protocol.md#branch-barrier).
 */
export { BranchBarrier, isMongoClient } from "./branch-barrier.ts";
export type { BarrierDb, BranchMetadata, BranchQuery, MysqlPoolOf, PgPoolOf } from "./branch-barrier.ts";
export { barrierTableDdl, createBarrierTable } from "./ddl.ts";
export { BarrierError, barrierDuplicated, barrierFailure, isBarrierDuplicated, isBarrierFailure } from "./errors.ts";
export type { BarrierErrorCode } from "./errors.ts";
export { createMongoBarrierIndex } from "./mongo.ts";
export type { MongoCallOptions } from "./mongo.ts";
export { doAndSubmit, doAndSubmitDB, msgBarrier, msgBarrierDb } from "./msg.ts";
export type { DoAndSubmitMsg, MsgBarrierDbAdapter } from "./msg.ts";
export { CHECK_ADJUST_AMOUNT_LUA, CHECK_ADJUST_AMOUNT_NO_ORIGIN_LUA, DEFAULT_REDIS_BARRIER_EXPIRE_SECONDS, QUERY_PREPARED_LUA, redisBarrierKey } from "./redis.ts";
export { DEFAULT_BARRIER_TABLE, getBarrierTableName, setBarrierTableName } from "./table-name.ts";
export type {
  BarrierOptions,
  BarrierResult,
  BarrierSqlTx,
  BranchInfo,
  KyselyExecutorLike,
  KyselyLike,
  MongoClientLike,
  MongoCollectionLike,
  MongoSessionLike,
  MysqlConnectionLike,
  MysqlPoolConnectionLike,
  MysqlPoolLike,
  PgPoolClientLike,
  PgPoolLike,
  PgQueryable,
  PgQueryResultLike,
  RedisLike,
  SqlDialect,
} from "./types.ts";
