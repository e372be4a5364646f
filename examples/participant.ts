/**
 * A tiny sample participant ("branch" service) for the README's curl example.
 *
 *   npm run example:participant        # listens on 127.0.0.1:8081 (PORT, HOST override)
 *
 * Every endpoint answers 200 {"dtm_result":"SUCCESS"} and logs the call as one line. Told to fail
 * (a branch URL with `?fail=1`, e.g. `http://127.0.0.1:8081/api/TransIn?fail=1`), it answers
 * 409 {"dtm_result":"FAILURE"} instead, so a saga whose action fails can be tried by hand: the
 * coordinator keeps the URL's own query and adds gid, trans_type, branch_id and op to it.
 * GET is served too: the coordinator calls a branch with GET when its payload is empty.
 */
import Fastify from "fastify";

const port = Number(process.env["PORT"] ?? 8081);
// In a container (docker-compose.yml's cluster profile) it must listen on 0.0.0.0.
const host = process.env["HOST"] ?? "127.0.0.1";
const app = Fastify({ logger: false });

// Keep the body as raw text whatever its content type (and accept an empty JSON body).
app.removeAllContentTypeParsers();
app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => done(null, body));

const SUCCESS = '{"dtm_result":"SUCCESS"}';
const FAILURE = '{"dtm_result":"FAILURE"}';

for (const name of ["TransOut", "TransOutRevert", "TransIn", "TransInRevert"]) {
  app.route<{ Querystring: Record<string, string | undefined> }>({
    method: ["GET", "POST"],
    url: `/api/${name}`,
    handler: async (req, reply) => {
      const { gid = "", branch_id = "", op = "", fail = "" } = req.query;
      const body = typeof req.body === "string" ? req.body : "";
      const failing = fail === "1";
      console.log(`${req.method} /api/${name} gid=${gid} branch_id=${branch_id} op=${op} body=${body}${failing ? " -> FAILURE" : ""}`);
      return reply
        .code(failing ? 409 : 200)
        .header("content-type", "application/json")
        .send(failing ? FAILURE : SUCCESS);
    },
  });
}

try {
  await app.listen({ port, host });
  console.log(`sample participant listening on http://${host}:${port}/api`);
} catch (err) {
  console.error(err);
  process.exit(1);
}
