/**
 * The local transaction of a msg's sender, for the load generator: take `amount` from the source
 * account with the msg barrier row `(msg, gid, 00, msg)` in the same local transaction (and, on
 * PostgreSQL / MariaDB, an effect row `(gid, 00, msg, account, -amount)`), so that the
 * participant's check-back (routes.ts `queryPrepared(accountDb(account))`) can tell whether it
 * committed.
 *
 * ```ts
 * const msg = new Msg(client, gid).add(branchUrls(base).msg.transIn, { account: to, amount });
 * await msg.doAndSubmit(branchUrls(base).queryPrepared(accountDb(from)), () => msgSenderDebit(clients, gid, from, amount));
 * // a sender that "vanishes" between its commit and submit:
 * await msg.prepare(qp); await msgSenderDebit(clients, gid, from, amount); // and no submit
 * ```
 */
import { msgBarrier } from "../../../sdk/src/index.ts";
import { CHAOS_BARRIER_OPTIONS, applyThroughBarrier, type AccountChange } from "./accounts.ts";
import type { ParticipantClients } from "./clients.ts";

/** The clients the sender needs (clients.ts `openClients(dbs, { redisPrefix })`). */
export type SenderClients = Pick<ParticipantClients, "pg" | "mysql" | "redis">;

/**
 * Runs the sender's local transaction for msg `gid` on `account`'s database: the msg barrier row
 * and `balance -= amount`. Rejects with FAILURE (the Msg then aborts) when the balance is too low,
 * with DUPLICATED when this gid's local transaction ran before (or its check-back already rolled
 * it back), and with anything else when the outcome is unknown (the Msg then asks the check-back).
 */
export async function msgSenderDebit(clients: SenderClients, gid: string, account: number, amount: number): Promise<void> {
  if (!Number.isSafeInteger(amount) || amount <= 0) throw new Error(`a msg moves a positive whole amount, got ${amount}`);
  const bb = msgBarrier(gid, CHAOS_BARRIER_OPTIONS);
  const change: AccountChange = { gid, branchId: bb.branchId, op: bb.op, account, balance: -amount, requireFunds: true };
  await applyThroughBarrier(clients, bb, change);
}
