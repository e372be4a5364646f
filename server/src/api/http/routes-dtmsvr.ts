import type { FastifyInstance } from "fastify";
import type { TransService } from "../../service/trans-service.ts";
import { branchToWire, transToWire } from "../../service/wire.ts";
import { CoordinatorError } from "../../core/errors.ts";

const SUCCESS = { dtm_result: "SUCCESS" } as const;

type Query = Record<string, string | undefined>;

/** dtm's REST API under /api/dtmsvr (PROTOCOL §3). Each handler decodes, calls the service, encodes. */
export function dtmsvrRoutes(service: TransService, version: string) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get("/version", async () => ({ version }));
    app.get("/newGid", async () => ({ dtm_result: "SUCCESS", gid: service.newGid() }));

    app.post("/submit", async (req) => {
      await service.submit(req.body);
      return SUCCESS;
    });
    app.post("/forceStop", async (req) => {
      await service.forceStop(req.body);
      return SUCCESS;
    });
    app.post("/resetNextCronTime", async (req) => {
      await service.resetNextCronTime(req.body);
      return SUCCESS;
    });
    app.get("/resetCronTime", async (req) => {
      const q = req.query as Query;
      const r = await service.resetCronTime(optionalNumber(q, "timeout"), optionalNumber(q, "limit"));
      return { has_remaining: r.hasRemaining, succeed_count: r.count };
    });

    app.get("/query", async (req) => {
      const r = await service.query((req.query as Query)["gid"]);
      return { branches: r.branches.map(branchToWire), transaction: r.transaction ? transToWire(r.transaction) : null };
    });
    app.get("/all", async (req) => {
      const r = await service.all(req.query as Query);
      return { next_position: r.nextPosition, transactions: r.transactions ? r.transactions.map(transToWire) : null };
    });
  };
}

function optionalNumber(q: Query, key: string): number | undefined {
  const raw = q[key];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new CoordinatorError("INVALID_REQUEST", `${key} must be a non-negative number`);
  return n;
}
