import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import type { ConnectionOptions } from "node:tls";
import { credentials } from "@grpc/grpc-js";
import type { ChannelCredentials } from "@grpc/grpc-js";

/** The `branchTls` settings: file paths ("" = not set) and switches (docs/security.md#tls-for-branch-calls). */
export interface BranchTlsSettings {
  /** PEM bundle of the CAs that sign participants' certificates; replaces Node's root CAs for branch calls. */
  ca: string;
  /** PEM client certificate (chain) the coordinator presents to participants that ask for one (mTLS). */
  cert: string;
  /** PEM private key of `cert`. */
  key: string;
  /** Refuse a participant whose certificate does not verify (default true). */
  rejectUnauthorized: boolean;
  /** Call gRPC participants over TLS (their URLs carry no scheme); HTTP participants by their `https://` URLs. */
  grpc: boolean;
}

/** The TLS material of branch calls, read once at start. */
export interface BranchTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
  grpc: boolean;
}

/** Which setting (and environment variable) names each file, for error messages. */
const FILE_KEYS = { ca: "DTX_BRANCH_TLS_CA", cert: "DTX_BRANCH_TLS_CERT", key: "DTX_BRANCH_TLS_KEY" } as const;

/**
 * Reads the files `settings` name and checks that they are PEM a TLS client can use (a key that
 * matches its certificate). Throws an Error naming the setting and the file, never its content.
 */
export function loadBranchTls(settings: BranchTlsSettings): BranchTls {
  const tls: BranchTls = { rejectUnauthorized: settings.rejectUnauthorized, grpc: settings.grpc };
  for (const name of ["ca", "cert", "key"] as const) {
    const path = settings[name];
    if (path === "") continue;
    try {
      tls[name] = readFileSync(path);
    } catch (error) {
      throw new Error(`branchTls.${name} (${FILE_KEYS[name]}): cannot read ${path}: ${(error as Error).message}`);
    }
  }
  if (tls.ca && !tls.ca.includes("-----BEGIN CERTIFICATE-----")) throw new Error(`branchTls.ca (${FILE_KEYS.ca}): ${settings.ca} holds no PEM certificate`);
  try {
    if (tls.ca) createSecureContext({ ca: tls.ca });
  } catch (error) {
    throw new Error(`branchTls.ca (${FILE_KEYS.ca}): ${settings.ca} is not a usable PEM CA bundle: ${(error as Error).message}`);
  }
  try {
    if (tls.cert && tls.key) createSecureContext({ cert: tls.cert, key: tls.key });
  } catch (error) {
    throw new Error(`branchTls.cert / branchTls.key (${FILE_KEYS.cert}, ${FILE_KEYS.key}): ${settings.cert} and ${settings.key} are not a PEM certificate and its private key: ${(error as Error).message}`);
  }
  return tls;
}

/** The TLS part of undici's `connect` options (used for `https://` branch URLs only). */
export function undiciTlsOptions(tls: BranchTls | undefined): ConnectionOptions {
  if (!tls) return {};
  return {
    rejectUnauthorized: tls.rejectUnauthorized,
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
  };
}

/** grpc-js channel credentials with the same CA, client certificate and verification. */
export function grpcCredentials(tls: BranchTls): ChannelCredentials {
  return credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null, { rejectUnauthorized: tls.rejectUnauthorized });
}
