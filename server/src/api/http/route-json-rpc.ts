import type { FastifyInstance } from "fastify";
import { clip, describeValue } from "../../core/echo.ts";
import { CoordinatorError, WireResult } from "../../core/errors.ts";
import { JSONRPC_FAILURE, JSONRPC_ONGOING } from "../../driver/jsonrpc-invoker.ts";
import type { Logger } from "../../logger.ts";
import type { TransService } from "../../service/trans-service.ts";

interface RpcError {
  code: number;
  message: string;
  data?: { code: string };
}

type RpcReply = { jsonrpc: "2.0"; id: string | null; result: unknown; error: RpcError | null };

function reply(id: string | null, result: unknown, error: RpcError | null): RpcReply {
  return { error, id, jsonrpc: "2.0", result };
}

/**
 * JSON-RPC 2.0 on POST /api/json-rpc (PROTOCOL §4) with dtm's methods and error codes: -32700
 * parse error (HTTP 400), -32600 bad request, -32601 unknown method, -32901 FAILURE, -32902
 * ONGOING, -32602 a client mistake (with our stable code in `data.code`), -32603 anything else.
 */
export function jsonRpcRoute(service: TransService, logger: Logger) {
  const methods: Record<string, (params: unknown) => Promise<unknown>> = {
    newGid: async () => ({ gid: service.newGid() }),
    prepare: async (p) => service.prepare(p).then(() => null),
    submit: async (p) => service.submit(p).then(() => null),
    abort: async (p) => service.abort(p).then(() => null),
    registerBranch: async (p) => service.registerBranch(p).then(() => null),
  };
  return async (app: FastifyInstance): Promise<void> => {
    await app.register(async (scope) => {
      // JSON-RPC answers a body that is not JSON itself (-32700), so it parses its own body.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => done(null, body));
      scope.post("/api/json-rpc", async (req, res) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(String(req.body ?? ""));
        } catch (error) {
          return res.status(400).send(reply(null, null, { code: -32700, message: `Parse json error: ${clip((error as Error).message)}`, data: { code: "INVALID_JSON" } }));
        }
        const o = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
        const id = o["id"];
        if (typeof id !== "string") {
          return res.status(400).send(reply(null, null, { code: -32700, message: "Parse json error: id must be a string", data: { code: "INVALID_REQUEST" } }));
        }
        if (id === "" || o["jsonrpc"] !== "2.0") {
          return reply(id, null, { code: -32600, message: "Bad json request: id must be set and jsonrpc must be 2.0", data: { code: "INVALID_REQUEST" } });
        }
        const name = o["method"];
        const method = typeof name === "string" && Object.hasOwn(methods, name) ? methods[name] : undefined;
        if (!method) return reply(id, null, { code: -32601, message: `Method not found: ${typeof name === "string" ? clip(name) : describeValue(name)}`, data: { code: "ROUTE_NOT_FOUND" } });
        try {
          return reply(id, await method(o["params"]), null);
        } catch (error) {
          return reply(id, null, rpcError(error, logger));
        }
      });
    });
  };
}

function rpcError(error: unknown, logger: Logger): RpcError {
  if (error instanceof WireResult) return { code: error.result === "FAILURE" ? JSONRPC_FAILURE : JSONRPC_ONGOING, message: error.message };
  if (error instanceof CoordinatorError && error.httpStatus < 500) return { code: -32602, message: error.message, data: { code: error.code } };
  logger.error({ err: error }, "JSON-RPC call failed");
  // Our own 5xx messages are written for clients (STORE_UNAVAILABLE, a concurrent change); any
  // other exception's text is an implementation detail (a stack, a driver's message): logged only.
  if (error instanceof CoordinatorError) return { code: -32603, message: error.message, data: { code: error.code } };
  return { code: -32603, message: "internal error; see the coordinator log", data: { code: "INTERNAL" } };
}
