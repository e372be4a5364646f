/**
 * Quiesce: after the nemesis has stopped and the world is healed, wait (bounded) until every gid
 * of the run is settled: terminal, or unknown to the coordinators (a submit that never reached
 * the store). Terminal statuses never change, so each poll only asks about the gids still open.
 */
import type { FinalTrans } from "../contracts.ts";
import { sleep } from "./poll.ts";

export const TERMINAL = new Set(["succeed", "failed"]);
/** Progress lines at most this often. */
const SAY_EVERY_MS = 5_000;

export interface QuiesceResult {
  /** When the last open gid became settled, or null if some were still open at the deadline. */
  settledAt: number | null;
  /** Gids still open at the deadline. */
  open: string[];
}

function settled(t: FinalTrans, acknowledged: ReadonlySet<string>): boolean {
  if (t.status === undefined) return !acknowledged.has(t.gid);
  return TERMINAL.has(t.status);
}

export async function quiesce(opts: {
  gids: readonly string[];
  /** Acknowledged gids must exist to count as settled. */
  acknowledged: ReadonlySet<string>;
  read: (gids: string[]) => Promise<FinalTrans[]>;
  timeoutMs: number;
  everyMs?: number;
  say?: (line: string) => void;
}): Promise<QuiesceResult> {
  const deadline = Date.now() + opts.timeoutMs;
  let open = [...opts.gids];
  let lastSaid = 0;
  for (;;) {
    try {
      const states = await opts.read(open);
      const byGid = new Map(states.map((t) => [t.gid, t]));
      open = open.filter((gid) => {
        const t = byGid.get(gid);
        return t === undefined || !settled(t, opts.acknowledged);
      });
    } catch (error) {
      opts.say?.(`quiesce: reading states failed (${(error as Error).message}); polling on`);
    }
    if (open.length === 0) return { settledAt: Date.now(), open };
    if (Date.now() > deadline) return { settledAt: null, open };
    if (Date.now() - lastSaid >= SAY_EVERY_MS) {
      lastSaid = Date.now();
      opts.say?.(`quiesce: ${open.length} gids not terminal yet`);
    }
    await sleep(opts.everyMs ?? 1_000);
  }
}
