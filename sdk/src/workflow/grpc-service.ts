import { invalidArgument } from "../errors.ts";
import type { GrpcUnaryCallback, GrpcUnaryCallLike } from "../handlers/grpc.ts";
import { grpcStatusFor } from "../handlers/grpc.ts";
import { branchInfoFromMetadata } from "../handlers/common.ts";

/** The full method path the coordinator calls to resume a workflow over gRPC. */
export const WORKFLOW_EXECUTE_PATH = "/workflow.Workflow/Execute";

/** One method of a grpc-js service definition (structural, so the SDK needs no grpc-js types). */
export interface GrpcMethodDefinitionLike {
  readonly path: string;
  readonly requestStream: false;
  readonly responseStream: false;
  readonly originalName: string;
  requestSerialize(value: Buffer): Buffer;
  requestDeserialize(bytes: Buffer): Buffer;
  responseSerialize(value: Buffer): Buffer;
  responseDeserialize(bytes: Buffer): Buffer;
}

/** `workflow.Workflow` for `server.addService(definition, implementation)` (cast `definition` to grpc-js `ServiceDefinition`). */
export interface WorkflowGrpcService {
  readonly definition: { readonly Execute: GrpcMethodDefinitionLike };
  readonly implementation: { readonly Execute: (call: GrpcUnaryCallLike<Buffer>, callback: GrpcUnaryCallback<Buffer>) => void };
}

function readVarint(bytes: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  let i = at;
  for (;;) {
    const b = bytes[i];
    if (b === undefined) throw invalidArgument("truncated WorkflowData message");
    i += 1;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, i];
    shift += 7;
    if (shift > 49) throw invalidArgument("malformed varint in WorkflowData message");
  }
}

/** Decodes `workflow.WorkflowData{bytes Data = 1}` (unknown fields skipped). */
export function decodeWorkflowData(bytes: Buffer): Buffer {
  let data: Buffer = Buffer.alloc(0);
  let i = 0;
  while (i < bytes.length) {
    const [tag, afterTag] = readVarint(bytes, i);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    i = afterTag;
    if (wire === 0) {
      i = readVarint(bytes, i)[1];
    } else if (wire === 1) {
      i += 8;
    } else if (wire === 5) {
      i += 4;
    } else if (wire === 2) {
      const [length, start] = readVarint(bytes, i);
      if (start + length > bytes.length) throw invalidArgument("truncated WorkflowData message");
      if (field === 1) data = bytes.subarray(start, start + length);
      i = start + length;
    } else {
      throw invalidArgument(`unsupported wire type ${wire} in WorkflowData message`);
    }
  }
  return data;
}

const identity = (b: Buffer): Buffer => b;

/**
 * Builds the `workflow.Workflow/Execute` service around `execute(name, gid, data)`: name from
 * metadata `dtm-op`, gid from `dtm-gid`, data from the `WorkflowData` message. Errors map as in
 * {@link grpcHandler}.
 */
export function workflowGrpcService(execute: (name: string, gid: string, data: Buffer) => Promise<void>): WorkflowGrpcService {
  return {
    definition: {
      Execute: {
        path: WORKFLOW_EXECUTE_PATH,
        requestStream: false,
        responseStream: false,
        originalName: "Execute",
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    implementation: {
      Execute: (call, callback) => {
        void Promise.resolve()
          .then(() => {
            const info = branchInfoFromMetadata(call.metadata);
            return execute(info.op, info.gid, decodeWorkflowData(Buffer.from(call.request)));
          })
          .then(
            () => callback(null, Buffer.alloc(0)),
            (error: unknown) => callback(grpcStatusFor(error)),
          );
      },
    },
  };
}
