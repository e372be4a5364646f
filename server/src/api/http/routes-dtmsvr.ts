import type { FastifyInstance } from "fastify";
import type { TopicService } from "../../service/topic-service.ts";
import { kvToWire } from "../../service/topic-service.ts";
import type { TransService } from "../../service/trans-service.ts";
import { branchToWire, transToWire } from "../../service/wire.ts";
import { CoordinatorError } from "../../core/errors.ts";

const SUCCESS = { dtm_result: "SUCCESS" } as const;

type Query = Record<string, string | undefined>;

/** Query strings as single values: a repeated parameter is a client mistake, not an array. */
function singleValues(raw: unknown): Query {
  const out: Query = {};
  for (const [k, v] of Object.entries((raw ?? {}) as Record<string, unknown>)) {
    if (Array.isArray(v)) throw new CoordinatorError("INVALID_REQUEST", `query parameter ${k} is given more than once`);
    out[k] = typeof v === "string" ? v : undefined;
  }
  return out;
}

/** dtm's REST API under /api/dtmsvr (docs/protocol.md#http-api). Each handler decodes, calls the service, encodes. */
export function dtmsvrRoutes(service: TransService, topics: TopicService, version: string) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get("/version", async () => ({ version }));
    app.get("/newGid", async () => ({ dtm_result: "SUCCESS", gid: service.newGid() }));

    app.post("/submit", async (req) => {
      await service.submit(req.body);
      return SUCCESS;
    });
    app.post("/prepare", async (req) => {
      await service.prepare(req.body);
      return SUCCESS;
    });
    app.post("/abort", async (req) => {
      await service.abort(req.body);
      return SUCCESS;
    });
    for (const path of ["/registerBranch", "/registerXaBranch", "/registerTccBranch"]) {
      app.post(path, async (req) => {
        await service.registerBranch(req.body);
        return SUCCESS;
      });
    }
    app.post("/prepareWorkflow", async (req) => {
      const r = await service.prepareWorkflow(req.body);
      return { progresses: r.progresses.map(branchToWire), transaction: transToWire(r.transaction) };
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
      const q = singleValues(req.query);
      const r = await service.resetCronTime(optionalNumber(q, "timeout"), optionalNumber(q, "limit"));
      return { has_remaining: r.hasRemaining, succeed_count: r.count };
    });

    app.get("/query", async (req) => {
      const r = await service.query((singleValues(req.query))["gid"]);
      return { branches: r.branches.map(branchToWire), transaction: r.transaction ? transToWire(r.transaction) : null };
    });
    app.get("/subscribe", async (req) => {
      const q = singleValues(req.query);
      await topics.subscribe(q["topic"], q["url"], q["remark"]);
      return SUCCESS;
    });
    app.get("/unsubscribe", async (req) => {
      const q = singleValues(req.query);
      await topics.unsubscribe(q["topic"], q["url"]);
      return SUCCESS;
    });
    app.delete("/topic/:topicName", async (req) => {
      await topics.deleteTopic((singleValues(req.params))["topicName"]);
      return SUCCESS;
    });
    app.get("/scanKV", async (req) => {
      const q = singleValues(req.query);
      const limit = optionalNumber(q, "limit") ?? 100;
      const position = q["position"] ?? "";
      if (position !== "" && !/^\d+$/.test(position)) throw new CoordinatorError("INVALID_REQUEST", "position must be a whole number");
      const r = await topics.scanKV(q["cat"] ?? "", position, Math.min(Math.floor(limit), 1000));
      return { kv: r.kv.map(kvToWire), next_position: r.nextPosition };
    });
    app.get("/queryKV", async (req) => {
      const q = singleValues(req.query);
      if (!q["key"]) {
        const r = await topics.scanKV(q["cat"] ?? "", "", 1000);
        return { kv: r.kv.map(kvToWire) };
      }
      return { kv: (await topics.queryKV(q["cat"] ?? "", q["key"])).map(kvToWire) };
    });
    app.get("/all", async (req) => {
      const r = await service.all(singleValues(req.query));
      return { next_position: r.nextPosition, transactions: r.transactions ? r.transactions.map(transToWire) : null };
    });
  };
}

function optionalNumber(q: Query, key: string): number | undefined {
  const raw = q[key];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 1_000_000_000) {
    throw new CoordinatorError("INVALID_REQUEST", `${key} must be a whole number between 0 and 1000000000`);
  }
  return n;
}
