/**
 * @packageDocumentation
 * The dtx SDK: transaction builders over HTTP or gRPC, and the branch barrier that makes
 * participant handlers safe against duplicate, out-of-order and late requests.
 */
export { DtxClient, clientForServer } from "./client.ts";
export type { DtxClientOptions } from "./client.ts";
export { DtxError, DtxFailure, DtxOngoing, DTX_ERROR_CODES, dtxErrorCode, isFailure, isOngoing } from "./errors.ts";
export type { DtxErrorCode, DtxErrorDetails } from "./errors.ts";
export { Op } from "./types.ts";
export type { BranchInfo, BranchRequestInfo, DtmResult, Payload, TransOptions, TransStatus, TransType } from "./types.ts";
export { newGid } from "./gid.ts";
export { BranchIdGen } from "./branch-id.ts";
export { requestBranch } from "./branch-call.ts";
export type { BranchRequest, BranchResponse } from "./branch-call.ts";

export { HttpTransport, DTM_API_PREFIX } from "./transport/http.ts";
export type { HttpTransportOptions } from "./transport/http.ts";
export { GrpcTransport } from "./transport/grpc.ts";
export type { GrpcTransportOptions } from "./transport/grpc.ts";
export type {
  BranchOpInfo, BranchRegistration, GlobalRequest, QueryReply, TransactionInfo, Transport, WorkflowPrepareReply, WorkflowProgress,
} from "./transport/transport.ts";

export { Saga } from "./saga.ts";
export { Msg, TOPIC_PREFIX } from "./msg.ts";
export { msgBarrierInfo } from "./msg-db.ts";
export type { MsgBarrierDb } from "./msg-db.ts";
export { Tcc, tccFromBranch, tccGlobalTransaction } from "./tcc.ts";
export { XaGlobal, xaGlobalTransaction } from "./xa.ts";
export { DEFAULT_XA_BARRIER_TABLE, mysqlXa, postgresXa, xaId, xaLocalTransaction, xaPhase2 } from "./xa-local.ts";
export type { MysqlXaLike, PgXaLike, XaConnection, XaDialect, XaOptions } from "./xa-local.ts";

export { Workflow, WorkflowRegistry } from "./workflow/registry.ts";
export type { WorkflowFunction, WorkflowRegisterOptions, WorkflowRegistryOptions } from "./workflow/registry.ts";
export type { WorkflowContext, WorkflowHttpInit, WorkflowPhase2, XaSessions } from "./workflow/context.ts";
export { WORKFLOW_EXECUTE_PATH, decodeWorkflowData } from "./workflow/grpc-service.ts";
export type { GrpcMethodDefinitionLike, WorkflowGrpcService } from "./workflow/grpc-service.ts";

export { branchInfoFromMetadata, branchInfoFromQuery, replyFor, runHandler } from "./handlers/common.ts";
export type { HandlerReply, MetadataLike, QueryLike } from "./handlers/common.ts";
export { fastifyHandler, fastifyJsonParser } from "./handlers/fastify.ts";
export type { FastifyReplyLike, FastifyRequestLike } from "./handlers/fastify.ts";
export { expressHandler } from "./handlers/express.ts";
export type { ExpressRequestLike, ExpressResponseLike } from "./handlers/express.ts";
export { nodeHandler, readRequest, sendReply } from "./handlers/node-http.ts";
export type { DtxHttpRequest, NodeHandlerOptions } from "./handlers/node-http.ts";
export { grpcHandler, grpcStatusFor } from "./handlers/grpc.ts";
export type { GrpcHandlerOptions, GrpcStatusError, GrpcUnaryCallback, GrpcUnaryCallLike } from "./handlers/grpc.ts";
export type { HttpHandlerOptions } from "./handlers/fastify.ts";
export {
  BRANCH_SIGNATURE_HEADER, BranchSignatureVerifier, DEFAULT_MAX_SKEW_SECONDS, canonicalBranchRequest, verifyBranchSignature,
} from "./handlers/signature.ts";
export type { BranchSignatureOptions, BranchSigningKey, SignatureOption, SignedRequest } from "./handlers/signature.ts";

export * from "./barrier/index.ts";
