import type { GlobalStatus } from "../core/types.ts";
import type { Logger } from "../logger.ts";

/** Which code path wrote a global status. */
export type StatusCause = "create" | "submit" | "abort" | "pass" | "force-stop" | "workflow-submit";

export interface StatusChange {
  gid: string;
  transType: string;
  /** null: the trans was created with status `to`. */
  from: GlobalStatus | null;
  to: GlobalStatus;
  cause: StatusCause;
}

/**
 * Logs one global status write that took effect (a created trans, or a won CAS that changed the
 * status) at debug level, as `{gid, transType, from, to, cause}` "status changed". The chaos
 * checker reads these lines to judge every transition (docs/chaos.md, goal G5). A write that
 * keeps the status (a new claim, a lease) is not a change and is not logged.
 */
export function logStatusChange(logger: Logger, change: StatusChange): void {
  if (change.from === change.to) return;
  logger.debug(change, "status changed");
}
