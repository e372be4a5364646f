import type { Report } from "../contracts.ts";
import type { RunIndex } from "./context.ts";
import { finalStatus } from "./context.ts";

/**
 * The trivial-pass guard (Restate's warning; RELIABILITY §7.4 "coverage"): of the gids the load
 * invoked, at least `minSucceededShare` must be acknowledged *and* end `succeed`. A run in which
 * everything failed, or nothing was acknowledged, checks nothing and must not pass.
 */
export function checkCoverage(index: RunIndex, acknowledged: ReadonlyMap<string, number>): Report["coverage"] {
  const invoked = [...index.history.keys()].length;
  const succeeded = [...acknowledged.keys()].filter((gid) => finalStatus(index, gid) === "succeed").length;
  const share = invoked === 0 ? 0 : succeeded / invoked;
  const minShare = index.tolerances.minSucceededShare;
  const coverage: Report["coverage"] = { ok: share >= minShare, succeededShare: Number(share.toFixed(4)), minShare };
  coverage.detail = `${succeeded} of ${invoked} invoked gids acknowledged and succeeded`;
  return coverage;
}
