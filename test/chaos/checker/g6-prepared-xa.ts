import type { Violation } from "../contracts.ts";
import type { RunIndex } from "./context.ts";
import { eventsAround } from "./context.ts";
import type { GoalResult } from "./types.ts";

/**
 * **G6: no XA transaction left prepared.**
 *
 * Definition: after quiesce, `pg_prepared_xacts` (PostgreSQL) and `XA RECOVER` (MariaDB), as
 * DatabaseState.preparedXa lists them, are empty. Each leftover xid is a violation; its gid is the
 * run's gid that the xid contains (xids are built from the gid and the branch id), when one does.
 */
export function checkPreparedXa(index: RunIndex): GoalResult {
  const violations: Violation[] = index.input.db.preparedXa.map((xa) => {
    // The longest gid the xid contains: t42-1 is a prefix of t42-17.
    const gid = index.gids.filter((g) => xa.xid.includes(g)).sort((a, b) => b.length - a.length)[0];
    const v: Violation = { goal: "G6", message: `XA transaction ${xa.xid} left prepared in ${xa.db}`, events: eventsAround(index, gid) };
    if (gid !== undefined) v.gid = gid;
    return v;
  });
  return { goal: "G6", violations, detail: `${violations.length} prepared XA left` };
}
