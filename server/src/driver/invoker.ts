import type { Outcome, Protocol, TransType } from "../core/types.ts";
import type { BranchSigner } from "./branch-signer.ts";

/** One call from the coordinator to a participant (docs/protocol.md#branch-calls). */
export interface BranchCall {
  gid: string;
  transType: TransType;
  protocol: Protocol;
  branchId: string;
  op: string;
  url: string;
  body: Uint8Array;
  headers: Readonly<Record<string, string>>;
  timeoutMs: number;
  /**
   * Aborted when the pass that makes the call has lost its claim or ended (docs/fencing.md): the
   * call is cut off and answers an `error` outcome.
   */
  signal?: AbortSignal;
}

/** What the HTTP and JSON-RPC invokers add to a plain call: a signature, and how answer bodies are quoted. */
export interface BranchCallOptions {
  /** Signs each request (docs/security.md#signed-branch-calls); absent when signing is off. */
  readonly signer?: BranchSigner;
  /** Quote raw answer bodies in outcome messages (config `echoBranchBodies`). */
  readonly echoBodies?: boolean;
}

/** Calls a participant and classifies its answer. Never throws: faults become `error` outcomes. */
export interface BranchInvoker {
  invoke(call: BranchCall): Promise<Outcome>;
  close(): Promise<void>;
}

/** The transport a URL is called over (docs/protocol.md#branch-calls dispatch rules). */
export function transportOf(protocol: Protocol, url: string): "http" | "json-rpc" | "grpc" {
  const isHttpUrl = url.startsWith("http://") || url.startsWith("https://");
  if (protocol === "json-rpc" && isHttpUrl && url.includes("method")) return "json-rpc";
  if (protocol === "http" || isHttpUrl) return "http";
  return "grpc";
}
