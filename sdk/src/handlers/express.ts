import { runHandler } from "./common.ts";
import type { HttpHandlerOptions } from "./fastify.ts";
import { verifyFrameworkRequest } from "./fastify.ts";
import { toVerifier } from "./signature.ts";

/** What a handler sees of an express `Request` when it does not name its own type (structural). */
export interface ExpressRequestLike {
  /** The parsed query string. */
  readonly query: unknown;
  /** The route parameters. */
  readonly params: unknown;
  /** The parsed body (with a body-parsing middleware). */
  readonly body: unknown;
  /** The method; read to verify a branch signature. */
  readonly method?: string;
  /** The raw path and query as received; read to verify a branch signature. */
  readonly originalUrl?: string;
  /** The request headers; read to verify a branch signature. */
  readonly headers?: unknown;
}

/** The part of an express `Response` the helper uses (structural: the SDK does not depend on express). */
export interface ExpressResponseLike {
  /** Sets the status code. */
  status(code: number): unknown;
  /** Sends the body as JSON. */
  json(body: unknown): unknown;
}

/**
 * Wraps a participant handler for express (4 or 5): the handler's result becomes 200
 * (`{"dtm_result":"SUCCESS"}` for no value), a thrown {@link DtxFailure} 409, {@link DtxOngoing}
 * 425, anything else 500 (see {@link replyFor}); with `signature` (see {@link HttpHandlerOptions}),
 * 401 for a request whose branch signature does not verify (its `originalUrl`, method, headers and
 * raw body are checked). Use `express.json()` (or `express.text()`) to parse bodies.
 *
 * ```ts
 * app.post("/api/TransOut", expressHandler(async (req: Request) => {
 *   const info = branchInfoFromQuery(req.query);
 *   if (insufficientBalance) throw new DtxFailure("insufficient balance");
 * }));
 * ```
 */
export function expressHandler<Req = ExpressRequestLike, Res extends ExpressResponseLike = ExpressResponseLike>(
  fn: (req: Req, res: Res) => unknown,
  options: HttpHandlerOptions = {},
): (req: Req, res: Res, next?: (err?: unknown) => void) => Promise<void> {
  const verifier = options.signature === undefined ? undefined : toVerifier(options.signature);
  return async (req, res) => {
    const { status, body } = await runHandler(() => {
      if (verifier) verifyFrameworkRequest(verifier, req);
      return fn(req, res);
    });
    res.status(status);
    res.json(body);
  };
}
