import type { TransGlobal, TransType } from "./types.ts";

/** The timing knobs the planner needs from the coordinator's config (milliseconds). */
export interface TimingConfig {
  retryInterval: number;
  maxRetryInterval: number;
  timeoutToFail: number;
  requestTimeout: number;
  /** Fraction of the interval added at random to a retry time (0.1 = up to +10%). */
  retryJitter: number;
}

export type RetryKind = "reset" | "keep" | "backoff";

type TimedTrans = Pick<TransGlobal, "options" | "transType" | "createTime">;

/**
 * The base retry interval of a trans (docs/protocol.md#retries): its own `retry_interval`, else its
 * `timeout_to_fail` when that is shorter than the global interval, else the global interval.
 */
export function baseInterval(trans: Pick<TransGlobal, "options">, cfg: TimingConfig): number {
  const own = trans.options.retryInterval;
  if (own > 0) return own;
  const timeout = trans.options.timeoutToFail;
  if (timeout > 0 && timeout < cfg.retryInterval) return timeout;
  return cfg.retryInterval;
}

/**
 * The interval after a pass that did not finish. dtm doubles forever; dtx caps the doubling
 * at `maxRetryInterval` (docs/deviations.md D3) so an RM back from a long outage is retried promptly.
 */
export function nextInterval(current: number, kind: RetryKind, base: number, cfg: TimingConfig): number {
  if (kind === "reset") return base;
  if (kind === "keep") return current > 0 ? Math.min(current, cfg.maxRetryInterval) : base;
  const doubled = Math.max(current, base) * 2;
  return Math.max(base, Math.min(doubled, cfg.maxRetryInterval));
}

/**
 * When to retry, given the interval: `now + interval`, plus jitter so that many transactions
 * failing together against one RM do not retry in lock-step. `random01` is injected to keep
 * this function pure.
 */
export function retryAt(now: number, interval: number, cfg: TimingConfig, random01: number): number {
  return now + interval + Math.floor(interval * cfg.retryJitter * random01);
}

/** The effective timeout of a trans in ms, or 0 for none (saga and workflow have none by default). */
export function effectiveTimeout(trans: Pick<TransGlobal, "options" | "transType">, cfg: TimingConfig): number {
  if (trans.options.timeoutToFail > 0) return trans.options.timeoutToFail;
  return defaultTimeoutApplies(trans.transType) ? cfg.timeoutToFail : 0;
}

function defaultTimeoutApplies(type: TransType): boolean {
  return type === "msg" || type === "tcc" || type === "xa";
}

export function isTimedOut(trans: TimedTrans, now: number, cfg: TimingConfig): boolean {
  const timeout = effectiveTimeout(trans, cfg);
  return timeout > 0 && now - trans.createTime >= timeout;
}

/** dtm's rollback reason for a timeout; docs/deviations.md D6: it prints the effective timeout, in whole seconds. */
export function timeoutReason(trans: Pick<TransGlobal, "options" | "transType">, cfg: TimingConfig): string {
  return `Timeout after ${Math.round(effectiveTimeout(trans, cfg) / 1000)} seconds`;
}

/** The request timeout for a branch call: the trans's own, else the global one. */
export function requestTimeout(trans: Pick<TransGlobal, "options">, cfg: TimingConfig): number {
  return trans.options.requestTimeout > 0 ? trans.options.requestTimeout : cfg.requestTimeout;
}
