/**
 * A workflow with the SDK: `npm start`, then `npx tsx examples/sdk-workflow.ts`.
 * Steps are recorded with the coordinator; an unfinished workflow is resumed through the callback
 * route (the coordinator calls it every retry interval), replaying the steps already recorded.
 */
import type { FastifyRequest } from "fastify";
import { DtxClient, Workflow, fastifyHandler } from "../sdk/src/index.ts";
import { DTX_SERVER, startDemoParticipant } from "./sdk-participant.ts";

const client = new DtxClient({ server: DTX_SERVER });
const p = await startDemoParticipant((app) => {
  app.route({
    method: ["GET", "POST"],
    url: "/workflow/resume",
    handler: fastifyHandler((req: FastifyRequest) => Workflow.handleResume(req.query as Record<string, string>, req.body)),
  });
});
try {
  Workflow.init({ client, callbackUrl: p.api.replace(/\/api$/, "/workflow/resume") });
  Workflow.register("transfer", async (wf) => {
    const { amount } = wf.json<{ amount: number }>();
    // A compensation is a plain call (not a recorded step); it must be idempotent, it may run again.
    wf.newBranch().onRollback(async (branch) => {
      const res = await fetch(`${p.api}/TransOutRevert?gid=${branch.gid}&trans_type=workflow&branch_id=${branch.branchId}&op=rollback`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ amount }),
      });
      if (!res.ok) throw new Error(`TransOutRevert answered ${res.status}`);
    });
    await wf.callHttp(`${p.api}/TransOut`, { body: { amount } });
    await wf.callHttp(`${p.api}/TransIn`, { body: { amount } });
    return { moved: amount };
  });
  const result = await Workflow.execute("transfer", `wf-${Date.now()}`, { amount: 30 });
  console.log(`workflow: ${result.toString()}`);
} finally {
  await p.close();
  await client.close();
}
