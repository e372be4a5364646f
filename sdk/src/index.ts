/**
 * @packageDocumentation
 * The dtx SDK: transaction builders over HTTP or gRPC, and the branch barrier that makes
 * participant handlers safe against duplicate, out-of-order and late requests.
 */
export {};
