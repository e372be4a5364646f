import type { FastifyInstance } from "fastify";
import { clip, describeValue } from "../../core/echo.ts";
import { CoordinatorError, dtmResultForStatus, WireResult } from "../../core/errors.ts";
import { JSONRPC_FAILURE, JSONRPC_ONGOING } from "../../driver/jsonrpc-invoker.ts";
import type { Logger } from "../../logger.ts";
import type { TransService } from "../../service/trans-service.ts";
import { retryAfterOf } from "./error-map.ts";

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
 * JSON-RPC 2.0 on POST /api/json-rpc with dtm's methods and error codes: -32700 parse error
 * (HTTP 400), -32600 bad request, -32601 unknown method, -32901 FAILURE and -32902 ONGOING (what
 * HTTP answers 409 / 425), -32602 another client mistake, -32603 anything else; every error but
 * the first three carries our stable code in `data.code` (docs/errors.md).
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
          // Overload is answered 503 with Retry-After, as on the REST routes, so proxies and clients back off.
          const retryAfter = retryAfterOf(error);
          if (retryAfter !== undefined) void res.status(503).header("retry-after", String(retryAfter));
          return reply(id, null, rpcError(error, logger));
        }
      });
    });
  };
}

/** In JSON-RPC's range for implementation-defined server errors (-32000 to -32099). */
export const JSONRPC_OVERLOADED = -32000;

/**
 * JSON-RPC error code of STORE_UNAVAILABLE: in the range JSON-RPC leaves to servers
 * (-32000..-32099), with the stable code in `data.code`; the HTTP answer is 503 with Retry-After.
 */
export const JSONRPC_STORE_UNAVAILABLE = -32003;

/** dtm's outcomes are -32901 / -32902, as every HTTP 409 / 425 is FAILURE / ONGOING (docs/errors.md). */
function rpcError(error: unknown, logger: Logger): RpcError {
  if (error instanceof WireResult) return { code: error.result === "FAILURE" ? JSONRPC_FAILURE : JSONRPC_ONGOING, message: error.message, data: { code: error.result } };
  if (error instanceof CoordinatorError && error.code === "STORE_UNAVAILABLE") {
    logger.warn({ reason: error.message }, "JSON-RPC call failed: the store is unavailable");
    return { code: JSONRPC_STORE_UNAVAILABLE, message: error.message, data: { code: error.code } };
  }
  if (error instanceof CoordinatorError && error.httpStatus < 500) {
    const dtmResult = dtmResultForStatus(error.httpStatus);
    const code = dtmResult === "FAILURE" ? JSONRPC_FAILURE : dtmResult === "ONGOING" ? JSONRPC_ONGOING : -32602;
    return { code, message: error.message, data: { code: error.code } };
  }
  if (error instanceof CoordinatorError && error.code === "OVERLOADED") return { code: JSONRPC_OVERLOADED, message: error.message, data: { code: error.code } };
  logger.error({ err: error }, "JSON-RPC call failed");
  // Our own 5xx messages are written for clients (STORE_UNAVAILABLE, a concurrent change); any
  // other exception's text is an implementation detail (a stack, a driver's message): logged only.
  if (error instanceof CoordinatorError) return { code: -32603, message: error.message, data: { code: error.code } };
  return { code: -32603, message: "internal error; see the coordinator log", data: { code: "INTERNAL" } };
}
