/**
 * The business of each chaos participant URL (routes.ts has the table): one account change per
 * call, through the SDK's barrier on the account's database. Resolves for SUCCESS (also when the
 * barrier skipped a duplicate or a null compensation); rejects with a FAILURE error for 409 and
 * with anything else for 500.
 */
import {
  BranchBarrier,
  DtxClient,
  mysqlXa,
  postgresXa,
  xaLocalTransaction,
  type BranchRequestInfo,
  type XaOptions,
} from "../../../sdk/src/index.ts";
import { accountDb, type AccountDb } from "../contracts.ts";
import { CHAOS_BARRIER_OPTIONS, CHAOS_BARRIER_TABLE, applyMysqlChange, applyPgChange, applyThroughBarrier, type AccountChange } from "./accounts.ts";
import { openMysqlConnection, type ParticipantClients } from "./clients.ts";
import { BadBranchRequest, parsePayload, type BranchPayload, type Route, type Side, type Step } from "./routes.ts";

const XA_OPTIONS: XaOptions = { barrierTable: CHAOS_BARRIER_TABLE };
/**
 * Bound of an XA action's registerBranch call: the SDK's default (30 s) would hold the account's
 * row lock that long behind a paused coordinator.
 */
export const COORDINATOR_TIMEOUT_MS = 5_000;
/** A run has a few coordinators; more addresses than this is a bug, not a reason to grow. */
const MAX_COORDINATORS = 16;
const coordinators = new Map<string, DtxClient>();

/** The client for the coordinator an XA action names in its `dtm` query parameter (HTTP URL or gRPC host:port). */
function coordinatorFor(dtm: string): DtxClient {
  let client = coordinators.get(dtm);
  if (!client) {
    if (coordinators.size >= MAX_COORDINATORS) throw new BadBranchRequest("BAD_QUERY", `more than ${MAX_COORDINATORS} coordinator addresses in dtm`);
    client = new DtxClient(/^https?:\/\//.test(dtm) ? { server: dtm, timeoutMs: COORDINATOR_TIMEOUT_MS } : { grpcServer: dtm, timeoutMs: COORDINATOR_TIMEOUT_MS });
    coordinators.set(dtm, client);
  }
  return client;
}

/** The change a step makes to its account; see routes.ts. */
export function changeFor(side: Side, step: Step, amount: number): Pick<AccountChange, "balance" | "frozen" | "requireFunds"> {
  const out = side === "TransOut";
  switch (step) {
    case "action":
      return out ? { balance: -amount, requireFunds: true } : { balance: amount };
    case "compensate":
      return { balance: out ? amount : -amount };
    case "try":
      return out ? { balance: -amount, frozen: amount, requireFunds: true } : { balance: 0 };
    case "confirm":
      return out ? { balance: 0, frozen: -amount } : { balance: amount };
    case "cancel":
      return out ? { balance: amount, frozen: -amount } : { balance: 0 };
  }
}

/**
 * A workflow's rollback callback calls with `op=rollback`; it undoes the branch's `action` exactly
 * as a saga's compensation does, so its barrier and effect rows say `compensate`, on every
 * database alike: the SDK's Redis barrier knows only `compensate` / `cancel` as compensations
 * (which block their action / try), and the checker then reads one set of ops everywhere.
 */
function barrierOp(op: string): string {
  return op === "rollback" ? "compensate" : op;
}

/** Runs one saga / TCC / msg / workflow step on the account's database. */
async function runStep(clients: ParticipantClients, request: BranchRequestInfo, side: Side, step: Step, payload: BranchPayload): Promise<void> {
  const info = { ...request, op: barrierOp(request.op) };
  const change: AccountChange = { gid: info.gid, branchId: info.branchId, op: info.op, account: payload.account, ...changeFor(side, step, payload.amount) };
  const bb = new BranchBarrier(info, CHAOS_BARRIER_OPTIONS);
  await applyThroughBarrier(clients, bb, change);
}

/** XA phase 2 (op commit / rollback) of a branch on `db`, on the pools kept for it (clients.ts). */
async function xaPhase2(clients: ParticipantClients, db: "postgres" | "mysql", info: BranchRequestInfo): Promise<void> {
  if (db === "postgres") {
    await xaLocalTransaction(info, postgresXa(clients.xaPg), () => Promise.resolve(), XA_OPTIONS);
    return;
  }
  const conn = await clients.xaMysql.getConnection();
  try {
    await xaLocalTransaction(info, mysqlXa(conn), () => Promise.resolve(), XA_OPTIONS);
  } finally {
    conn.release();
  }
}

/** An XA branch: the local XA transaction (op action) or its phase 2, on `db`. */
async function runXa(clients: ParticipantClients, db: "postgres" | "mysql", side: Side, info: BranchRequestInfo, body: string): Promise<void> {
  if (info.op !== "action") return xaPhase2(clients, db, info);
  const payload = parsePayload(body);
  if (accountDb(payload.account) !== db) throw new BadBranchRequest("WRONG_DATABASE", `account ${payload.account} is not a ${db} account`);
  const change: AccountChange = { gid: info.gid, branchId: info.branchId, op: info.op, account: payload.account, ...changeFor(side, "action", payload.amount) };
  const options: XaOptions = { ...XA_OPTIONS, client: coordinatorFor(info.dtm) };
  if (db === "postgres") {
    const client = await clients.pg.connect();
    let failed = false;
    try {
      await xaLocalTransaction(info, postgresXa(client), (c) => applyPgChange(c, change), options);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      // After an error the session's state is unknown (the SDK's rollback may have failed too): drop it.
      client.release(failed);
    }
    return;
  }
  // A dedicated session: the SDK closes it after XA PREPARE, handing the transaction to the server.
  const conn = await openMysqlConnection(clients.urls.mysql);
  try {
    await xaLocalTransaction(info, mysqlXa(conn), (c) => applyMysqlChange(c, change), options);
  } finally {
    conn.destroy();
  }
}

/** The msg check-back against the sender's database `db`. */
async function queryPrepared(clients: ParticipantClients, db: AccountDb, info: BranchRequestInfo): Promise<void> {
  const bb = new BranchBarrier(info, CHAOS_BARRIER_OPTIONS);
  if (db === "postgres") return bb.queryPrepared(clients.pg);
  if (db === "mysql") return bb.queryPrepared(clients.mysql);
  return bb.redisQueryPrepared(clients.redis);
}

/** Runs the business of `route` for one call. `body` is the raw request body (JSON text). */
export async function runRoute(clients: ParticipantClients, route: Route, info: BranchRequestInfo, body: string): Promise<void> {
  switch (route.kind) {
    case "branch":
      return runStep(clients, info, route.side, route.step, parsePayload(body));
    case "xa":
      return runXa(clients, route.db, route.side, info, body);
    case "queryPrepared":
      return queryPrepared(clients, route.db, info);
  }
}
