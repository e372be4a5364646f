/**
 * The chaos participant's HTTP server: routes a branch call to its handler (handlers.ts), logs it
 * to the calls file (start and end lines), and injects the seeded branch fault drawn for it
 * (faults.ts): error-before / ongoing / failure answer before any effect; late waits `lateMs`
 * first; error-after and drop-after let the effect commit, then answer 500 or cut the connection;
 * a duplicate runs the handler twice at once (the barrier must absorb it) and answers the first.
 * Past `maxInFlight` calls at once it answers 503 (Retry-After: 1) before any effect, except to
 * XA phase 2.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { branchInfoFromQuery, readRequest, replyFor, sendReply, type BranchRequestInfo, type DtxHttpRequest, type HandlerReply } from "../../../sdk/src/index.ts";
import type { BranchFault } from "../contracts.ts";
import { resultOf, type CallLog } from "./call-log.ts";
import type { ParticipantClients } from "./clients.ts";
import type { FaultPlan, FaultScope } from "./faults.ts";
import { runRoute } from "./handlers.ts";
import { BadBranchRequest, routeOf, type Route } from "./routes.ts";

export interface ParticipantServerOptions {
  clients: ParticipantClients;
  plan: FaultPlan;
  log: CallLog;
  /** How long a `late` call waits before it does its work (longer than the coordinator's request timeout). */
  lateMs: number;
  logger: Logger;
  /** Branch calls served at once; more are answered 503 with Retry-After before any effect (default {@link MAX_IN_FLIGHT}). */
  maxInFlight?: number;
}

/**
 * Default bound of calls served at once. Each holds a database connection (pools of 10) or waits
 * for one; beyond this, calls only queue behind row locks while their callers time out (1 s) and
 * send more: answering 503 at once sheds that load before it piles up.
 */
export const MAX_IN_FLIGHT = 64;

/** Largest request body accepted (payloads are a few dozen bytes). */
const BODY_LIMIT = 64 * 1024;

function badRequest(code: string, message: string): HandlerReply {
  return { status: 400, body: { error: { code, message } } };
}

/** What may be injected on a call of `route` with this op (see FaultScope). */
export function faultScope(route: Route, op: string): FaultScope {
  if (route.kind === "xa") return { failureAllowed: op === "action", duplicateAllowed: op !== "action" };
  if (route.kind === "queryPrepared") return { failureAllowed: false, duplicateAllowed: true };
  const forward = route.step === "action" || route.step === "try";
  return { failureAllowed: forward && route.mode !== "msg" && (op === "action" || op === "try"), duplicateAllowed: true };
}

async function reply(fn: () => Promise<void>): Promise<HandlerReply> {
  try {
    await fn();
    return replyFor({ ok: true, value: undefined });
  } catch (error) {
    if (error instanceof BadBranchRequest) return badRequest(error.code, error.message);
    return replyFor({ ok: false, error });
  }
}

function parseInfo(req: DtxHttpRequest, route: Route): BranchRequestInfo {
  let info: BranchRequestInfo;
  try {
    info = branchInfoFromQuery(req.query);
  } catch (err) {
    throw new BadBranchRequest("BAD_QUERY", err instanceof Error ? err.message : String(err));
  }
  if (route.kind === "xa" && info.op === "action" && (!info.dtm || !info.phase2Url)) throw new BadBranchRequest("BAD_QUERY", "an XA action needs dtm and phase2_url in its query");
  return info;
}

/** What one server counts across its calls. */
interface ServerState {
  /** Branch calls being served (the 503 bound). */
  inFlight: number;
}

async function handleCall(o: ParticipantServerOptions, state: ServerState, req: DtxHttpRequest, res: ServerResponse): Promise<void> {
  if (req.path === "/ping") return sendReply(res, { status: 200, body: { msg: "pong" } });
  const route = routeOf(req.path);
  if (!route) return sendReply(res, { status: 404, body: { error: { code: "NOT_FOUND", message: `no route ${req.path}` } } });
  let info: BranchRequestInfo;
  try {
    info = parseInfo(req, route);
  } catch (err) {
    const e = err as BadBranchRequest;
    return sendReply(res, badRequest(e.code, e.message));
  }
  const callId = o.log.start({ gid: info.gid, branchId: info.branchId, op: info.op, path: req.path });
  // XA phase 2 is never shed: it is what releases the row locks the other calls wait on.
  const releasesLocks = route.kind === "xa" && info.op !== "action";
  if (!releasesLocks && state.inFlight >= (o.maxInFlight ?? MAX_IN_FLIGHT)) {
    res.setHeader("retry-after", "1");
    sendReply(res, { status: 503, body: { error: { code: "PARTICIPANT_BUSY", message: `more than ${o.maxInFlight ?? MAX_IN_FLIGHT} branch calls at once` } } });
    o.log.end(callId, "ERROR");
    return;
  }
  state.inFlight++;
  try {
    await serveCall(o, req, res, route, info, callId);
  } finally {
    state.inFlight--;
  }
}

async function serveCall(o: ParticipantServerOptions, req: DtxHttpRequest, res: ServerResponse, route: Route, info: BranchRequestInfo, callId: string): Promise<void> {
  const draw = o.plan.draw({ gid: info.gid, branchId: info.branchId, op: info.op, path: req.path }, faultScope(route, info.op));
  const answer = (r: HandlerReply, fault?: BranchFault): void => {
    sendReply(res, r);
    o.log.end(callId, resultOf(r.status), fault, draw.duplicate ? { duplicated: true } : {});
    if (r.status >= 500) o.logger.warn({ gid: info.gid, branchId: info.branchId, op: info.op, path: req.path, status: r.status, fault, body: r.body }, "branch call answered with an error");
  };
  switch (draw.fault) {
    case "error-before":
      return answer({ status: 500, body: { message: "injected error before any effect" } }, draw.fault);
    case "ongoing":
      return answer({ status: 425, body: { dtm_result: "ONGOING", message: "injected" } }, draw.fault);
    case "failure":
      return answer({ status: 409, body: { dtm_result: "FAILURE", message: "injected" } }, draw.fault);
    case "late":
      await sleep(o.lateMs);
      break;
    default:
      break;
  }
  const run = (): Promise<HandlerReply> => reply(() => runRoute(o.clients, route, info, req.text()));
  // A duplicate delivery: both runs start together; the answer waits for both, so the logged call spans them.
  const [first, second] = await Promise.all([run(), draw.duplicate ? run() : Promise.resolve(undefined)]);
  if (second && second.status !== first.status) o.logger.info({ gid: info.gid, branchId: info.branchId, op: info.op, first: first.status, second: second.status }, "duplicate run answered differently");
  if (first.status === 200 && draw.fault === "error-after") return answer({ status: 500, body: { message: "injected error after the effect committed" } }, draw.fault);
  if (first.status === 200 && draw.fault === "drop-after") {
    res.socket?.destroy();
    o.log.end(callId, "DROPPED", draw.fault, draw.duplicate ? { duplicated: true } : {});
    return;
  }
  return answer(first, draw.fault === "late" ? "late" : undefined);
}

/** The participant's HTTP server (not yet listening). */
export function createParticipantServer(o: ParticipantServerOptions): Server {
  const state: ServerState = { inFlight: 0 };
  return createServer((raw: IncomingMessage, res: ServerResponse) => {
    readRequest(raw, { bodyLimit: BODY_LIMIT })
      .then((req) => handleCall(o, state, req, res))
      .catch((err: unknown) => {
        o.logger.error({ err, path: raw.url }, "participant request failed");
        if (!res.headersSent && !res.destroyed) sendReply(res, { status: 500, body: { message: "participant error" } });
      });
  });
}
