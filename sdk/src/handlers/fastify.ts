import { runHandler } from "./common.ts";

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
 * {@link replyFor}).
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
): (request: Req, reply: Reply) => Promise<Reply> {
  return async (request, reply) => {
    const { status, body } = await runHandler(() => fn(request, reply));
    reply.code(status);
    reply.send(body);
    return reply;
  };
}

/**
 * A fastify content-type parser for `application/json` that accepts an empty body (as
 * `undefined`). The coordinator POSTs XA phase 2 calls with `Content-Type: application/json` and
 * no body, which fastify's default parser refuses with 400:
 *
 * ```ts
 * app.addContentTypeParser("application/json", { parseAs: "string" }, fastifyJsonParser);
 * ```
 */
export function fastifyJsonParser(_request: unknown, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
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
