/**
 * What the coordinator says about itself when it starts: its version and addresses, and a warning
 * for each way the configuration leaves it open to other hosts (docs/cli.md).
 */
import { isIP } from "node:net";
import type { Config } from "../config.ts";

export interface StartWarning {
  /** Stable, for log searches and alerts. */
  readonly code: "AUTH_OFF_NON_LOOPBACK" | "BRANCH_URLS_OPEN_NON_LOOPBACK" | "BRANCH_URLS_OFF";
  /** `warn` for a risk to other hosts; `info` for an open default that only local clients can use. */
  readonly level: "warn" | "info";
  readonly message: string;
}

/** Where each warning points: what to turn on before production, and why. */
export const CHECKLIST_DOC = "docs/production-checklist.md";

/** The branch URL policy in one word, for the start line: `off` is dtm's default (any URL is called). */
export function branchUrlPolicyState(config: Config): "off" | "allow-list" | "deny-private" | "allow-list+deny-private" {
  const { allow, denyPrivate } = config.branchUrls;
  if (allow.length > 0) return denyPrivate ? "allow-list+deny-private" : "allow-list";
  return denyPrivate ? "deny-private" : "off";
}

/** Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (h.startsWith("::ffff:")) return h.slice("::ffff:".length).startsWith("127.");
  return false;
}

/**
 * The warnings for `config`: a coordinator that listens beyond loopback with no token accepts
 * transactions from anyone who reaches the port, and with no branch URL allow-list it then calls
 * whatever URL such a client names (an open relay into the network it runs in). On loopback, a
 * policy that is entirely off is still said (at info level): it is the default, and the one most
 * easily carried into production unnoticed.
 */
export function startWarnings(config: Config): StartWarning[] {
  if (isLoopbackHost(config.host)) {
    if (branchUrlPolicyState(config) !== "off") return [];
    return [{
      code: "BRANCH_URLS_OFF",
      level: "info",
      message: `the branch URL policy is off: the coordinator calls any URL a client names (dtm's default). Only local clients can reach it on host ${config.host}; before exposing it, set branchUrls.allow (DTX_BRANCH_URLS_ALLOW) and branchUrls.denyPrivate (DTX_BRANCH_URLS_DENY_PRIVATE), see ${CHECKLIST_DOC}`,
    }];
  }
  const where = `host ${config.host} (HTTP port ${config.httpPort}, gRPC port ${config.grpcPort})`;
  const warnings: StartWarning[] = [];
  if (config.auth.tokens.length === 0) {
    warnings.push({
      code: "AUTH_OFF_NON_LOOPBACK",
      level: "warn",
      message: `the API listens on ${where}, reachable from other hosts, with authentication off: anyone who reaches it can start, abort and read transactions. Set auth.tokens (DTX_AUTH_TOKENS), or host 127.0.0.1 (DTX_HOST); see ${CHECKLIST_DOC}`,
    });
  }
  if (config.branchUrls.allow.length === 0) {
    const state = config.branchUrls.denyPrivate ? "has no allow-list (only private addresses are refused)" : "is off";
    warnings.push({
      code: "BRANCH_URLS_OPEN_NON_LOOPBACK",
      level: "warn",
      message: `the branch URL policy ${state} and the API listens on ${where}, reachable from other hosts: the coordinator calls any URL a client names, which makes it an open relay into its network. Set branchUrls.allow (DTX_BRANCH_URLS_ALLOW)${config.branchUrls.denyPrivate ? "" : " and branchUrls.denyPrivate (DTX_BRANCH_URLS_DENY_PRIVATE)"}; see ${CHECKLIST_DOC}`,
    });
  }
  return warnings;
}
