import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { DtxError } from "../errors.ts";
import type { BranchRequestInfo } from "../types.ts";
import type { HandlerReply } from "./common.ts";
import { branchInfoFromQuery, runHandler } from "./common.ts";
import type { SignatureOption } from "./signature.ts";
import { toVerifier } from "./signature.ts";

/** A request read by {@link nodeHandler}: the method, path, query and the whole body. */
export interface DtxHttpRequest {
  /** `GET`, `POST`, ... */
  readonly method: string;
  /** The path without the query string. */
  readonly path: string;
  /** The path and query exactly as received (what a branch signature covers). */
  readonly url: string;
  /** The query parameters. */
  readonly query: URLSearchParams;
  /** The request headers (lower-cased names). */
  readonly headers: IncomingHttpHeaders;
  /** The raw body (empty for none). */
  readonly body: Buffer;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON (INVALID_ARGUMENT when it is not). */
  json<T = unknown>(): T;
  /** The branch identity from the query (see {@link branchInfoFromQuery}). */
  branchInfo(): BranchRequestInfo;
}

/** Options of {@link nodeHandler} and {@link readRequest}. */
export interface NodeHandlerOptions {
  /** Largest body accepted, in bytes (default 4 MiB); a bigger one is answered 500 without calling the handler. */
  readonly bodyLimit?: number;
  /** Verify the coordinator's branch signature first: a request that fails is answered 401 and never reaches the handler. */
  readonly signature?: SignatureOption;
}

/** Reads a whole `node:http` request. */
export async function readRequest(req: IncomingMessage, options: NodeHandlerOptions = {}): Promise<DtxHttpRequest> {
  const limit = options.bodyLimit ?? 4 * 1024 * 1024;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new DtxError("INVALID_ARGUMENT", `the request body is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks);
  const url = new URL(req.url ?? "/", "http://localhost");
  return {
    method: req.method ?? "GET",
    path: url.pathname,
    url: req.url ?? "/",
    query: url.searchParams,
    headers: req.headers,
    body,
    text: () => body.toString("utf8"),
    json: <T>() => {
      try {
        return JSON.parse(body.toString("utf8")) as T;
      } catch (err) {
        throw new DtxError("INVALID_ARGUMENT", "the request body is not JSON", { cause: err });
      }
    },
    branchInfo: () => branchInfoFromQuery(url.searchParams),
  };
}

/** Writes a {@link HandlerReply} as JSON. */
export function sendReply(res: ServerResponse, reply: HandlerReply): void {
  const text = typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body);
  res.writeHead(reply.status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Wraps a participant handler for a plain `node:http` server: reads the body, calls `fn`, and
 * answers 200 / 409 / 425 / 500 as {@link replyFor} maps the outcome; with `signature`, 401 for a
 * request whose branch signature does not verify.
 *
 * ```ts
 * http.createServer(nodeHandler(async (req) => {
 *   if (req.path === "/api/TransOut") return transOut(req.branchInfo(), req.json());
 *   throw new DtxError("NOT_FOUND", req.path);
 * })).listen(8081);
 * ```
 */
export function nodeHandler(fn: (req: DtxHttpRequest) => unknown, options: NodeHandlerOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const verifier = options.signature === undefined ? undefined : toVerifier(options.signature);
  return (req, res) => {
    void runHandler(async () => {
      const request = await readRequest(req, options);
      verifier?.verifyHttp(request);
      return fn(request);
    }).then((reply) => sendReply(res, reply));
  };
}
