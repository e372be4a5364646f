import { runHandler } from "./common.ts";

/** What a handler sees of an express `Request` when it does not name its own type (structural). */
export interface ExpressRequestLike {
  /** The parsed query string. */
  readonly query: unknown;
  /** The route parameters. */
  readonly params: unknown;
  /** The parsed body (with a body-parsing middleware). */
  readonly body: unknown;
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
 * 425, anything else 500 (see {@link replyFor}). Use `express.json()` (or `express.text()`) to
 * parse bodies.
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
): (req: Req, res: Res, next?: (err?: unknown) => void) => Promise<void> {
  return async (req, res) => {
    const { status, body } = await runHandler(() => fn(req, res));
    res.status(status);
    res.json(body);
  };
}
