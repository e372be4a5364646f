import { runHandler } from "./common.ts";
import type { SignatureOption } from "./signature.ts";
import { rawBodyOf, toVerifier } from "./signature.ts";

/** What a handler sees of a fastify `FastifyRequest` when it does not name its own type (structural). */
export interface FastifyRequestLike {
  /** The parsed query string. */
  readonly query: unknown;
  /** The route parameters. */
  readonly params: unknown;
  /** The parsed body. */
  readonly body: unknown;
  /** The request headers. */
  readonly headers: unknown;
  /** The method; read to verify a branch signature. */
  readonly method?: string;
  /** The raw path and query; read to verify a branch signature. */
  readonly url?: string;
}

/** Options of {@link fastifyHandler} and {@link expressHandler}. */
export interface HttpHandlerOptions {
  /**
   * Verify the coordinator's branch signature first: a request that fails is answered 401 and never
   * reaches the handler. The signature covers the raw body: keep it as `request.rawBody` (fastify:
   * {@link fastifyJsonParser} does; express: `express.json({ verify: (req, _res, buf) => { req.rawBody = buf; } })`)
   * or receive it as a Buffer or string (`express.raw()`, `express.text()`).
   */
  readonly signature?: SignatureOption;
}

/** Verifies a framework request's signature (401 on failure, via the thrown UNAUTHENTICATED error). */
export function verifyFrameworkRequest(verifier: ReturnType<typeof toVerifier>, request: unknown): void {
  const r = request as { method?: unknown; url?: unknown; originalUrl?: unknown; headers?: unknown; body?: unknown; rawBody?: unknown };
  const url = typeof r.originalUrl === "string" ? r.originalUrl : r.url;
  if (typeof r.method !== "string" || typeof url !== "string") throw new Error("verifying a branch signature needs the request's method and url");
  verifier.verifyHttp({ method: r.method, url, headers: (r.headers ?? {}) as Record<string, unknown>, body: rawBodyOf(r) });
}

/** The part of a fastify `FastifyReply` the helper uses (structural: the SDK does not depend on fastify). */
export interface FastifyReplyLike {
  /** Sets the status code. */
  code(statusCode: number): unknown;
  /** Sends the body. */
  send(payload?: unknown): unknown;
  /** Sets a response header. */
  header(name: string, value: unknown): unknown;
}

/**
 * Wraps a participant handler for fastify: the handler's result becomes 200 (`{"dtm_result":"SUCCESS"}`
 * for no value), a thrown {@link DtxFailure} 409, {@link DtxOngoing} 425, anything else 500 (see
 * {@link replyFor}); with `signature`, 401 for a request whose branch signature does not verify.
 *
 * ```ts
 * app.post("/api/TransOut", fastifyHandler(async (req: FastifyRequest) => {
 *   const info = branchInfoFromQuery(req.query as Record<string, string>);
 *   if (insufficientBalance) throw new DtxFailure("insufficient balance");
 * }));
 * ```
 */
export function fastifyHandler<Req extends FastifyRequestLike = FastifyRequestLike, Reply extends FastifyReplyLike = FastifyReplyLike>(
  fn: (request: Req, reply: Reply) => unknown,
  options: HttpHandlerOptions = {},
): (request: Req, reply: Reply) => Promise<Reply> {
  const verifier = options.signature === undefined ? undefined : toVerifier(options.signature);
  return async (request, reply) => {
    const { status, body } = await runHandler(() => {
      if (verifier) verifyFrameworkRequest(verifier, request);
      return fn(request, reply);
    });
    reply.code(status);
    reply.send(body);
    return reply;
  };
}

/**
 * A fastify content-type parser for `application/json` that accepts an empty body (as
 * `undefined`) and keeps the raw body as `request.rawBody` (for a branch signature). The
 * coordinator POSTs XA phase 2 calls with `Content-Type: application/json` and no body, which
 * fastify's default parser refuses with 400:
 *
 * ```ts
 * app.addContentTypeParser("application/json", { parseAs: "buffer" }, fastifyJsonParser);
 * ```
 */
export function fastifyJsonParser(request: unknown, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  if (request !== null && typeof request === "object") (request as { rawBody?: string | Buffer }).rawBody = body;
  const text = typeof body === "string" ? body : body.toString("utf8");
  if (text.trim() === "") {
    done(null, undefined);
    return;
  }
  try {
    done(null, JSON.parse(text) as unknown);
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    (error as Error & { statusCode?: number }).statusCode = 400;
    done(error);
  }
}
