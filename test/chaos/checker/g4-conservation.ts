import type { Violation } from "../contracts.ts";
import { ACCOUNT_COUNT, accountDb, initialBalance } from "../contracts.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround, finalStatus, TERMINAL } from "./context.ts";
import type { GoalResult } from "./types.ts";

const GIDS_LISTED = 20;

/**
 * **G4: exact conservation of money.**
 *
 * Definition, two levels:
 * 1. Total: Σ balance + Σ frozen over every account of the three databases equals
 *    Σ initialBalance(id) for id in 0..ACCOUNT_COUNT-1 (contracts.ts); every account is present.
 *    Judged only when no stored gid is left non-terminal (an open saga may be half-way).
 * 2. Per account (stronger): the expected final amount is initialBalance(id) plus, for each gid
 *    whose final status is `succeed`, its intent's transfers into the account minus those out of
 *    it; a `failed` gid or one no coordinator knows applies nothing. The actual amount is
 *    balance + frozen (a TCC try moves money from balance to frozen; the confirm or cancel moves it
 *    on or back). Accounts touched by a gid that is still stored non-terminal are not compared
 *    (their outcome is open; G1/G2 report the gid). Every other account must also hold
 *    frozen = 0: nothing may stay frozen once its transactions ended.
 * A violation names the account, its database, expected and actual amounts, and the gids that
 * touched it with their final statuses (the first of them in `gid`).
 */
export function checkConservation(index: RunIndex): GoalResult {
  const violations: Violation[] = [];
  const { accounts } = index.input.db;
  const byId = new Map(accounts.map((a) => [a.id, a]));
  let expectedTotal = 0;
  const missing: number[] = [];
  for (let id = 0; id < ACCOUNT_COUNT; id++) {
    expectedTotal += initialBalance(id);
    const account = byId.get(id);
    // A Redis account whose keys are gone reads as NaN (participant/snapshot.ts).
    if (!account || !Number.isFinite(account.balance) || !Number.isFinite(account.frozen)) missing.push(id);
  }
  const actualTotal = accounts.reduce((sum, a) => sum + a.balance + a.frozen, 0);
  if (missing.length > 0) violations.push({ goal: "G4", message: `accounts missing from the databases (or unreadable): ${missing.slice(0, 20).join(", ")}${missing.length > 20 ? " ..." : ""}`, events: [] });
  // A transaction left half-way (a saga's action done, the other not) moves the total legitimately
  // while it is open; G1/G2 report it, and the total is judged once nothing is open.
  const openGids = [...index.final.values()].filter((f) => f.status !== undefined && !TERMINAL.has(f.status)).length;
  if (openGids === 0 && actualTotal !== expectedTotal) {
    violations.push({ goal: "G4", message: `total balance + frozen is ${actualTotal}, expected ${expectedTotal} (difference ${actualTotal - expectedTotal})`, events: [] });
  }

  const expected = new Map<number, number>();
  const touchedBy = new Map<number, string[]>();
  const open = new Set<number>();
  for (const intent of index.intents.values()) {
    const status = finalStatus(index, intent.gid);
    for (const t of intent.transfers) {
      for (const id of [t.from, t.to]) {
        const list = touchedBy.get(id) ?? [];
        list.push(intent.gid);
        touchedBy.set(id, list);
        if (status !== undefined && !TERMINAL.has(status)) open.add(id);
      }
      if (status !== "succeed") continue;
      expected.set(t.from, (expected.get(t.from) ?? 0) - t.amount);
      expected.set(t.to, (expected.get(t.to) ?? 0) + t.amount);
    }
  }
  let differing = 0;
  for (const account of accounts) {
    if (open.has(account.id)) continue;
    const want = initialBalance(account.id) + (expected.get(account.id) ?? 0);
    const have = account.balance + account.frozen;
    if (have === want && account.frozen === 0) continue;
    differing++;
    const gids = touchedBy.get(account.id) ?? [];
    const listed = gids.slice(0, GIDS_LISTED).map((g) => `${g}:${finalStatus(index, g) ?? "absent"}`).join(", ");
    const what = have !== want ? `holds ${have} (balance ${account.balance} + frozen ${account.frozen}), expected ${want}` : `still holds ${account.frozen} frozen`;
    const violation: Violation = {
      goal: "G4",
      message: `account ${account.id} (${accountDb(account.id)}) ${what}; touched by ${gids.length} gids: ${listed}${gids.length > GIDS_LISTED ? " ..." : ""}`,
      events: eventsAround(index, gids[0]),
    };
    if (gids[0] !== undefined) violation.gid = gids[0];
    violations.push(violation);
  }
  const total = openGids === 0 ? `total ${actualTotal}/${expectedTotal}` : `total ${actualTotal}/${expectedTotal} not judged (${openGids} gids open)`;
  return { goal: "G4", violations, detail: `${total}; ${differing} accounts differ, ${open.size} accounts left open` };
}
