/**
 * The chaos participant's URLs and payload: what the load generator puts into its transactions.
 *
 * Every branch call carries the branch identity in the query as dtm sends it (`gid`,
 * `trans_type`, `branch_id`, `op`; XA actions also `dtm` and `phase2_url`) and a JSON body
 * {@link BranchPayload} naming ONE account and the amount moved. The path says what to do with it
 * (the op in the query only names the barrier row and effect row), so a workflow can call the same
 * URLs: its `callHttp` step sends `op=action` (to a saga action or a TCC try URL), its rollback
 * and commit callbacks call the compensate / cancel / confirm URL with the op they are given.
 * A workflow's `op=rollback` is recorded as `compensate` (barrier and effect rows, every
 * database): it undoes the step's `action` as a saga compensation does.
 *
 * | URL                           | account change (`a` = amount)                    | may answer FAILURE       |
 * |-------------------------------|--------------------------------------------------|--------------------------|
 * | saga.transOut                 | balance -= a                                     | yes: insufficient balance|
 * | saga.transOutCompensate       | balance += a                                     | no                       |
 * | saga.transIn                  | balance += a                                     | no (only a seeded fault) |
 * | saga.transInCompensate        | balance -= a (may go below zero)                 | no                       |
 * | tcc.transOutTry               | balance -= a, frozen += a (SQL; Redis: balance)  | yes: insufficient balance|
 * | tcc.transOutConfirm           | frozen -= a (SQL; Redis: nothing)                | no                       |
 * | tcc.transOutCancel            | balance += a, frozen -= a                        | no                       |
 * | tcc.transInTry / transInCancel| nothing (barrier and effect row only)            | try: only a seeded fault |
 * | tcc.transInConfirm            | balance += a                                     | no                       |
 * | xa[db].transOut / .transIn    | as saga's action, in the local XA transaction;   | transOut: insufficient   |
 * |                               | phase 2 (op=commit/rollback) on the same URL     | balance; phase 2: no     |
 * | msg.transIn                   | balance += a                                     | no                       |
 * | msg.queryPrepared[db]         | the msg check-back against `db` (the sender's)   | yes: the local tx never committed |
 *
 * XA URLs take PostgreSQL and MariaDB accounts only (Redis has no XA). Every handler runs
 * through the SDK's barrier on the account's database (table `chaos_barrier`, Redis keys under
 * the prefix); XA through `xaLocalTransaction` (its barrier rows go to the same table).
 */
import { ACCOUNT_COUNT, type AccountDb } from "../contracts.ts";

/**
 * The JSON body of every branch call (not of XA phase 2 or the msg check-back, which have none).
 * `peer` is the other account of the transfer, for the reader of the logs only.
 */
export interface BranchPayload {
  /** The account this branch changes, 0 ≤ account < ACCOUNT_COUNT. */
  account: number;
  /** The amount moved, a positive whole number. */
  amount: number;
  /** The other side of the transfer (informational). */
  peer?: number;
}

/** What a URL does: its transaction mode, its side of the transfer and its step. */
export type Side = "TransOut" | "TransIn";
/** The databases with XA. */
export type XaDb = "postgres" | "mysql";
export type Step = "action" | "compensate" | "try" | "confirm" | "cancel";
export type Route =
  | { kind: "branch"; mode: "saga" | "tcc" | "msg"; side: Side; step: Step }
  | { kind: "xa"; db: XaDb; side: Side }
  | { kind: "queryPrepared"; db: AccountDb };

/** The URLs of one participant, built from its base URL `http://127.0.0.1:<port>`. */
export interface BranchUrls {
  saga: { transOut: string; transOutCompensate: string; transIn: string; transInCompensate: string };
  tcc: { transOutTry: string; transOutConfirm: string; transOutCancel: string; transInTry: string; transInConfirm: string; transInCancel: string };
  /**
   * Per database, one URL per side: the action (called by the application with `phase2_url` set
   * to the same URL) and phase 2 (called there by the coordinator). The account must live in that
   * database (else 400 WRONG_DATABASE).
   */
  xa: Record<XaDb, { transOut: string; transIn: string }>;
  /** The msg branch (a credit) and the check-back per sender database. */
  msg: { transIn: string; queryPrepared: Record<AccountDb, string> };
  /** The msg check-back for the sender's database (= `msg.queryPrepared[db]`). */
  queryPrepared: (db: AccountDb) => string;
}

const ROUTES: ReadonlyMap<string, Route> = new Map<string, Route>([
  ["/saga/TransOut", { kind: "branch", mode: "saga", side: "TransOut", step: "action" }],
  ["/saga/TransOutCompensate", { kind: "branch", mode: "saga", side: "TransOut", step: "compensate" }],
  ["/saga/TransIn", { kind: "branch", mode: "saga", side: "TransIn", step: "action" }],
  ["/saga/TransInCompensate", { kind: "branch", mode: "saga", side: "TransIn", step: "compensate" }],
  ["/tcc/TransOutTry", { kind: "branch", mode: "tcc", side: "TransOut", step: "try" }],
  ["/tcc/TransOutConfirm", { kind: "branch", mode: "tcc", side: "TransOut", step: "confirm" }],
  ["/tcc/TransOutCancel", { kind: "branch", mode: "tcc", side: "TransOut", step: "cancel" }],
  ["/tcc/TransInTry", { kind: "branch", mode: "tcc", side: "TransIn", step: "try" }],
  ["/tcc/TransInConfirm", { kind: "branch", mode: "tcc", side: "TransIn", step: "confirm" }],
  ["/tcc/TransInCancel", { kind: "branch", mode: "tcc", side: "TransIn", step: "cancel" }],
  ["/xa/postgres/TransOut", { kind: "xa", db: "postgres", side: "TransOut" }],
  ["/xa/postgres/TransIn", { kind: "xa", db: "postgres", side: "TransIn" }],
  ["/xa/mysql/TransOut", { kind: "xa", db: "mysql", side: "TransOut" }],
  ["/xa/mysql/TransIn", { kind: "xa", db: "mysql", side: "TransIn" }],
  ["/msg/TransIn", { kind: "branch", mode: "msg", side: "TransIn", step: "action" }],
  ["/msg/QueryPrepared/postgres", { kind: "queryPrepared", db: "postgres" }],
  ["/msg/QueryPrepared/mysql", { kind: "queryPrepared", db: "mysql" }],
  ["/msg/QueryPrepared/redis", { kind: "queryPrepared", db: "redis" }],
]);

/** The route of a request path, or undefined. */
export function routeOf(path: string): Route | undefined {
  return ROUTES.get(path);
}

/**
 * The participant's URLs. `base` is `http://127.0.0.1:<port>` (a trailing `/` is ignored), as
 * the world builds it from the participant's ready line.
 */
export function branchUrls(base: string): BranchUrls {
  const b = base.replace(/\/+$/, "");
  const queryPrepared = { postgres: `${b}/msg/QueryPrepared/postgres`, mysql: `${b}/msg/QueryPrepared/mysql`, redis: `${b}/msg/QueryPrepared/redis` };
  return {
    saga: { transOut: `${b}/saga/TransOut`, transOutCompensate: `${b}/saga/TransOutCompensate`, transIn: `${b}/saga/TransIn`, transInCompensate: `${b}/saga/TransInCompensate` },
    tcc: {
      transOutTry: `${b}/tcc/TransOutTry`,
      transOutConfirm: `${b}/tcc/TransOutConfirm`,
      transOutCancel: `${b}/tcc/TransOutCancel`,
      transInTry: `${b}/tcc/TransInTry`,
      transInConfirm: `${b}/tcc/TransInConfirm`,
      transInCancel: `${b}/tcc/TransInCancel`,
    },
    xa: {
      postgres: { transOut: `${b}/xa/postgres/TransOut`, transIn: `${b}/xa/postgres/TransIn` },
      mysql: { transOut: `${b}/xa/mysql/TransOut`, transIn: `${b}/xa/mysql/TransIn` },
    },
    msg: { transIn: `${b}/msg/TransIn`, queryPrepared },
    queryPrepared: (db) => queryPrepared[db],
  };
}

/** A request the participant refuses (answered 400 with `code`; nothing written). */
export class BadBranchRequest extends Error {
  constructor(readonly code: "BAD_PAYLOAD" | "BAD_QUERY" | "WRONG_DATABASE", message: string) {
    super(message);
    this.name = "BadBranchRequest";
  }
}

/** Parses and checks a {@link BranchPayload}; throws {@link BadBranchRequest}. */
export function parsePayload(text: string): BranchPayload {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadBranchRequest("BAD_PAYLOAD", "the body is not JSON");
  }
  const p = value as Partial<BranchPayload> | null;
  if (typeof p !== "object" || p === null) throw new BadBranchRequest("BAD_PAYLOAD", "the body is not a JSON object");
  const { account, amount, peer } = p;
  if (!Number.isSafeInteger(account) || (account as number) < 0 || (account as number) >= ACCOUNT_COUNT) throw new BadBranchRequest("BAD_PAYLOAD", `account must be a whole number in [0, ${ACCOUNT_COUNT})`);
  if (!Number.isSafeInteger(amount) || (amount as number) <= 0) throw new BadBranchRequest("BAD_PAYLOAD", "amount must be a positive whole number");
  if (peer !== undefined && !Number.isSafeInteger(peer)) throw new BadBranchRequest("BAD_PAYLOAD", "peer must be a whole number");
  return { account: account as number, amount: amount as number, ...(peer === undefined ? {} : { peer }) };
}
