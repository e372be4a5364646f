/**
 * What the coordinator says about itself when it starts: its version and addresses, and a warning
 * for each way the configuration leaves it open to other hosts (docs/cli.md).
 */
import { isIP } from "node:net";
import type { Config } from "../config.ts";

export interface StartWarning {
  /** Stable, for log searches and alerts. */
  readonly code: "AUTH_OFF_NON_LOOPBACK" | "BRANCH_URLS_OPEN_NON_LOOPBACK";
  readonly message: string;
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
 * whatever URL such a client names (an open relay into the network it runs in).
 */
export function startWarnings(config: Config): StartWarning[] {
  if (isLoopbackHost(config.host)) return [];
  const where = `host ${config.host} (HTTP port ${config.httpPort}, gRPC port ${config.grpcPort})`;
  const warnings: StartWarning[] = [];
  if (config.auth.tokens.length === 0) {
    warnings.push({
      code: "AUTH_OFF_NON_LOOPBACK",
      message: `the API listens on ${where}, reachable from other hosts, with authentication off: anyone who reaches it can start, abort and read transactions. Set auth.tokens (DTX_AUTH_TOKENS), or host 127.0.0.1 (DTX_HOST)`,
    });
  }
  if (config.branchUrls.allow.length === 0) {
    warnings.push({
      code: "BRANCH_URLS_OPEN_NON_LOOPBACK",
      message: `the API listens on ${where}, reachable from other hosts, with the branch URL policy open: the coordinator calls any URL a client names, which makes it a relay into its network. Set branchUrls.allow (DTX_BRANCH_URLS_ALLOW)${config.branchUrls.denyPrivate ? "" : " and branchUrls.denyPrivate (DTX_BRANCH_URLS_DENY_PRIVATE)"}`,
    });
  }
  return warnings;
}
