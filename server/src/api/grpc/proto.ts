import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Options, PackageDefinition } from "@grpc/proto-loader";
import { loadSync } from "@grpc/proto-loader";

/**
 * How the .proto files are loaded everywhere (server, tests, bench): dtm's field names as written
 * (`Gid`, `TransType`, ...), int64 as JS numbers (they carry seconds and counts), bytes as Buffer,
 * and every scalar filled with its default so adapters never see `undefined`.
 */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
};

/**
 * The repository's `proto/` directory: two levels above `server/` when run from source
 * (`server/src/api/grpc`), one more when run from the build (`dist/server/src/api/grpc`, with
 * `proto/` copied next to `dist/` as the Dockerfile does).
 */
export function protoDir(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const candidates = [join(here, "../../../../proto"), join(here, "../../../../../proto")];
  const found = candidates.find((dir) => existsSync(join(dir, "dtmgimp.proto")));
  if (!found) throw new Error(`cannot find proto/dtmgimp.proto (looked in ${candidates.join(", ")})`);
  return found;
}

let dtmDefinition: PackageDefinition | undefined;

/** `dtmgimp.Dtm` and its messages (docs/protocol.md#grpc-api). Loaded once per process. */
export function loadDtmProto(): PackageDefinition {
  dtmDefinition ??= loadSync(join(protoDir(), "dtmgimp.proto"), PROTO_LOADER_OPTIONS);
  return dtmDefinition;
}

/** `workflow.Workflow` (docs/protocol.md#workflow), the callback a workflow application serves. */
export function loadWorkflowProto(): PackageDefinition {
  return loadSync(join(protoDir(), "wf.proto"), PROTO_LOADER_OPTIONS);
}

/** dtm's message shapes as @grpc/proto-loader hands them over with {@link PROTO_LOADER_OPTIONS}. */
export interface DtmTransOptions {
  WaitResult: boolean;
  TimeoutToFail: number;
  RetryInterval: number;
  BranchHeaders: Record<string, string>;
  RequestTimeout: number;
  RetryLimit: number;
}

export interface DtmRequest {
  Gid: string;
  TransType: string;
  /** null when the client left it out (a message field has no default). */
  TransOptions: DtmTransOptions | null;
  CustomedData: string;
  BinPayloads: Buffer[];
  QueryPrepared: string;
  Steps: string;
  ReqExtra: Record<string, string>;
  RollbackReason: string;
}

export interface DtmBranchRequest {
  Gid: string;
  TransType: string;
  BranchID: string;
  Op: string;
  Data: Record<string, string>;
  BusiPayload: Buffer;
}

export interface DtmTopicRequest {
  Topic: string;
  URL: string;
  Remark: string;
}

export interface DtmGidReply {
  Gid: string;
}

export interface DtmProgressesReply {
  Transaction: { Gid: string; Status: string; RollbackReason: string; Result: string };
  Progresses: { Status: string; BinData: Buffer; BranchID: string; Op: string }[];
}
