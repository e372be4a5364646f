import type { AccountDb, Intent, Kind, Transfer, Via } from "../contracts.ts";
import { ACCOUNT_COUNT, accountDb, initialBalance } from "../contracts.ts";
import { Dice } from "./dice.ts";

/**
 * The default mix, in percent of all transactions (RELIABILITY §7.2): 60% sagas, a quarter of
 * them concurrent DAGs; then TCC, msg, XA and workflows.
 */
export const DEFAULT_MIX: Readonly<Record<Kind, number>> = Object.freeze({
  saga: 45,
  "saga-dag": 15,
  tcc: 15,
  msg: 10,
  xa: 10,
  workflow: 5,
});

/** The rates of {@link RATES}. */
export interface Rates {
  readonly lowBalanceSource: number;
  readonly waitResult: number;
  readonly senderVanishes: number;
  readonly duplicate: number;
  readonly conflict: number;
  readonly grpc: number;
}

/** The seeded rates inside the mix (fractions of the transactions they apply to). */
export const RATES: Readonly<Rates> = Object.freeze({
  /** A transfer's source is a low-balance account (contracts LOW_BALANCE), so about half of them fail and roll back. */
  lowBalanceSource: 0.15,
  /** The coordinator is asked to wait for the first pass (`wait_result`). */
  waitResult: 0.5,
  /** Msg: the sender commits its local transaction and vanishes without submitting. */
  senderVanishes: 0.2,
  /** The final submit is sent twice, concurrently, with the same body (not for workflows; a saga's conflicting submit is then sent twice too). */
  duplicate: 0.01,
  /** Sagas: after the first submit was answered, the same gid is submitted with a different body. */
  conflict: 0.01,
  /** Transactions sent over gRPC rather than HTTP. */
  grpc: 0.5,
});

/** How a workflow step touches its account: as a saga action with compensation, a TCC try/confirm/cancel, or a local XA transaction. */
export type WorkflowStyle = "saga" | "tcc" | "xa";

/** One leg of a transaction: the debit of `from` or the credit of `to` of a transfer. */
export interface Leg {
  readonly account: number;
  /** Negative for a debit, positive for a credit. */
  readonly delta: number;
  /** The other account of the transfer (for the participant's logs only). */
  readonly peer: number;
}

/** Everything the generator does for transaction `n`, decided up front from the seed. */
export interface TxPlan {
  readonly n: number;
  readonly intent: Intent;
  /** Index into LoadOptions.coordinators. */
  readonly coordinator: number;
  /** Index into LoadOptions.participants. */
  readonly participant: number;
  readonly waitResult: boolean;
  /** The legs, in order: out then in, per transfer. */
  readonly legs: readonly Leg[];
  /** Workflow only: the style of each leg. */
  readonly styles: readonly WorkflowStyle[];
}

/** Options of {@link planTransaction}: the mix and how many coordinators and participants there are. */
export interface PlanContext {
  readonly seed: number;
  readonly mix: Readonly<Record<Kind, number>>;
  readonly coordinators: number;
  readonly participants: number;
  /** The rates (default {@link RATES}). */
  readonly rates?: Readonly<Rates>;
}

export function gidOf(seed: number, n: number): string {
  return `c${seed}-${n}`;
}

const SQL_DBS: readonly AccountDb[] = ["postgres", "mysql"];
const ALL_DBS: readonly AccountDb[] = ["postgres", "mysql", "redis"];

function accountsOn(dbs: readonly AccountDb[], low: boolean): number[] {
  const out: number[] = [];
  for (let id = 0; id < ACCOUNT_COUNT; id++) {
    if (dbs.includes(accountDb(id)) && (initialBalance(id) < initialBalance(0)) === low) out.push(id);
  }
  return out;
}

const CANDIDATES = {
  sql: { low: accountsOn(SQL_DBS, true), normal: accountsOn(SQL_DBS, false) },
  all: { low: accountsOn(ALL_DBS, true), normal: accountsOn(ALL_DBS, false) },
} as const;

function transfer(dice: Dice, rates: Rates, fromDbs: "sql" | "all", toDbs: "sql" | "all"): Transfer {
  const low = dice.chance(rates.lowBalanceSource);
  const from = dice.pick(low ? CANDIDATES[fromDbs].low : CANDIDATES[fromDbs].normal);
  let to = dice.pick([...CANDIDATES[toDbs].normal, ...CANDIDATES[toDbs].low]);
  while (to === from) to = dice.pick(CANDIDATES[toDbs].normal);
  return { from, to, amount: dice.int(1, 100) };
}

function transfersFor(kind: Kind, dice: Dice, rates: Rates): Transfer[] {
  switch (kind) {
    case "saga":
    case "tcc":
    case "workflow":
      return [transfer(dice, rates, "all", "all")];
    case "saga-dag":
      return Array.from({ length: dice.int(2, 3) }, () => transfer(dice, rates, "all", "all"));
    case "msg":
      // The sender's local transaction debits the source in its own SQL database.
      return [transfer(dice, rates, "sql", "all")];
    case "xa":
      return [transfer(dice, rates, "sql", "sql")];
  }
}

function legsOf(transfers: readonly Transfer[]): Leg[] {
  return transfers.flatMap((t) => [
    { account: t.from, delta: -t.amount, peer: t.to },
    { account: t.to, delta: t.amount, peer: t.from },
  ]);
}

/** Transaction `n` of a run: kind, transport, coordinator, accounts and amounts, all from the seed. */
export function planTransaction(ctx: PlanContext, n: number): TxPlan {
  const dice = new Dice(ctx.seed, n, "plan");
  const rates = ctx.rates ?? RATES;
  const kind = dice.weighted(ctx.mix);
  const via: Via = dice.chance(rates.grpc) ? "grpc" : "http";
  const coordinator = dice.int(0, ctx.coordinators - 1);
  const participant = dice.int(0, ctx.participants - 1);
  const transfers = transfersFor(kind, dice, rates);
  const legs = legsOf(transfers);
  const styles: WorkflowStyle[] =
    kind === "workflow" ? legs.map((leg) => dice.pick<WorkflowStyle>(accountDb(leg.account) === "redis" ? ["saga", "tcc"] : ["saga", "tcc", "xa"])) : [];
  const senderVanishes = kind === "msg" && dice.chance(rates.senderVanishes);
  // A vanished sender never submits, so there is no submit to duplicate.
  const duplicate = kind !== "workflow" && !senderVanishes && dice.chance(rates.duplicate);
  const conflict = (kind === "saga" || kind === "saga-dag") && dice.chance(rates.conflict);
  // A conflicting resubmit is meant to meet a finished transaction: wait for the first pass.
  const waitResult = conflict || dice.chance(rates.waitResult);
  const intent: Intent = {
    gid: gidOf(ctx.seed, n),
    kind,
    via,
    transfers,
    ...(senderVanishes ? { senderVanishes } : {}),
    ...(duplicate ? { duplicate } : {}),
    ...(conflict ? { conflict } : {}),
  };
  return { n, intent, coordinator, participant, waitResult, legs, styles };
}
