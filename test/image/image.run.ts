/**
 * The image test's checks, run by scripts/image-test.sh after it built deploy/Dockerfile (see
 * docs/deploy.md). Not a vitest file: it needs podman and a built image, and runs as its own CI
 * step with node's test runner (`node --import tsx --test test/image/image.run.ts`).
 *
 * Env: DTX_IMAGE (the built image), DTX_IMAGE_LABEL (label put on every container and volume,
 * which the script removes on exit, pass or fail).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startBusi, type Busi } from "../busi/index.ts";
import { PgArea } from "../helpers/store-areas.ts";

const IMAGE = requiredEnv("DTX_IMAGE");
const LABEL = requiredEnv("DTX_IMAGE_LABEL");
// crun and cgroup limits are refused on these machines: runc, host network, explicit ulimits.
const PODMAN = ["--runtime", "runc"];
const RUN_FLAGS = ["--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--label", LABEL];
const RUN_ID = randomBytes(4).toString("hex");
const READY_TIMEOUT_MS = 60_000;

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through scripts/image-test.sh`);
  return value;
}

interface Run {
  stdout: string;
  stderr: string;
}

function podman(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile("podman", [...PODMAN, ...args], { maxBuffer: 16 * 1024 * 1024, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`podman ${args.join(" ")} failed: ${stderr.trim() || error.message}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Runs a command in a throw-away container of the image, showing the image's own /data. */
async function inImage(entrypoint: string, ...args: string[]): Promise<string> {
  const { stdout } = await podman("run", "--rm", ...RUN_FLAGS, "--image-volume=ignore", "--entrypoint", entrypoint, IMAGE, ...args);
  return stdout.trim();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Bounded poll for a real event (the coordinator answering, a trans ending). */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = READY_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One coordinator container on host ports of its own. */
class Coordinator {
  readonly name = `dtx-image-test-${RUN_ID}-${randomBytes(3).toString("hex")}`;
  httpPort = 0;
  grpcPort = 0;

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  async start(mounts: string[], env: Record<string, string>): Promise<void> {
    this.httpPort = await freePort();
    this.grpcPort = await freePort();
    const envArgs = Object.entries({ DTX_HOST: "127.0.0.1", DTX_HTTP_PORT: String(this.httpPort), DTX_GRPC_PORT: String(this.grpcPort), ...env }).flatMap(
      ([k, v]) => ["-e", `${k}=${v}`],
    );
    await podman("run", "-d", "--name", this.name, ...RUN_FLAGS, ...mounts, ...envArgs, IMAGE);
    await waitFor(`${this.name} to answer GET /api/dtx/health`, async () => {
      const state = (await podman("inspect", "--format", "{{.State.Status}}", this.name)).stdout.trim();
      if (state !== "running") throw new Error(`container is ${state}; logs:\n${(await this.logs()).slice(-2000)}`);
      const res = await fetch(`${this.url}/api/dtx/health`);
      return res.ok ? true : undefined;
    });
  }

  async logs(): Promise<string> {
    const { stdout, stderr } = await podman("logs", this.name);
    return stdout + stderr;
  }

  /** `podman stop` (SIGTERM, then SIGKILL after 20 s); returns the exit code. */
  async stop(): Promise<number> {
    await podman("stop", "-t", "20", this.name);
    const code = Number((await podman("inspect", "--format", "{{.State.ExitCode}}", this.name)).stdout.trim());
    await podman("rm", "-v", this.name); // -v: the anonymous /data volume too
    return code;
  }

  async remove(): Promise<void> {
    await podman("rm", "-f", "-v", "-t", "2", this.name).catch(() => undefined);
  }
}

interface QueryAnswer {
  transaction?: { gid: string; status: string; trans_type: string };
  branches?: { branch_id: string; op: string; status: string; url: string }[];
}

async function query(dtx: Coordinator, gid: string): Promise<QueryAnswer> {
  const res = await fetch(`${dtx.url}/api/dtmsvr/query?gid=${encodeURIComponent(gid)}`);
  assert.equal(res.status, 200, `query ${gid}: HTTP ${res.status}`);
  return (await res.json()) as QueryAnswer;
}

/** Submits a two-step transfer saga against a participant and waits for its end. */
async function runSaga(dtx: Coordinator, busi: Pick<Busi, "url">, gid: string): Promise<QueryAnswer> {
  const res = await fetch(`${dtx.url}/api/dtmsvr/submit`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      gid,
      trans_type: "saga",
      steps: [
        { action: busi.url("TransOut"), compensate: busi.url("TransOutRevert") },
        { action: busi.url("TransIn"), compensate: busi.url("TransInRevert") },
      ],
      payloads: ['{"amount":30}', '{"amount":30}'],
    }),
  });
  assert.equal(res.status, 200, `submit ${gid}: HTTP ${res.status} ${await res.text()}`);
  return waitFor(`saga ${gid} to end`, async () => {
    const answer = await query(dtx, gid);
    const status = answer.transaction?.status;
    return status === "succeed" || status === "failed" ? answer : undefined;
  });
}

function callNames(busi: Busi, gid: string): string[] {
  return busi.calls({ gid }).map((c) => c.name);
}

let busi: Busi;
const live: Coordinator[] = [];
function coordinator(): Coordinator {
  const c = new Coordinator();
  live.push(c);
  return c;
}

before(async () => {
  busi = await startBusi({ host: "127.0.0.1" });
});
after(async () => {
  await Promise.all(live.map((c) => c.remove()));
  await busi.close();
});

describe("the image as built", () => {
  test("runs Node 24 as the unprivileged user node", async () => {
    assert.match(await inImage("node", "--version"), /^v24\./);
    const { stdout } = await podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE);
    assert.equal(stdout.trim(), "node");
    assert.equal(await inImage("id", "-u"), "1000");
  });

  test("every VOLUME directory exists in the image and belongs to the runtime user", async () => {
    const { stdout } = await podman("image", "inspect", "--format", "{{json .Config.Volumes}}", IMAGE);
    const volumes = Object.keys((JSON.parse(stdout) ?? {}) as Record<string, unknown>);
    assert.deepEqual(volumes, ["/data"]);
    const uid = await inImage("id", "-u");
    for (const dir of volumes) {
      // --image-volume=ignore shows the image's own directory: what Docker seeds a named volume from.
      assert.equal(await inImage("stat", "-c", "%u %F", dir), `${uid} directory`, `${dir} in the image`);
      assert.equal(await inImage("sh", "-c", `touch ${dir}/probe && echo writable`), "writable", `${dir} writable by the runtime user`);
    }
  });

  test("keeps HEALTHCHECK (docker format) and ships no build tools", async () => {
    const { stdout } = await podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", IMAGE);
    assert.match(stdout, /api\/dtx\/health/);
    const found = await inImage(
      "sh",
      "-c",
      "for t in g++ gcc make python3; do command -v $t; done; " +
        "for m in typescript tsx vitest eslint esbuild; do test -e node_modules/$m && echo node_modules/$m; done; " +
        "test -e server && echo server; test -e node_modules/better-sqlite3/deps && echo better-sqlite3/deps; true",
    );
    assert.equal(found, "", `dev tools or sources in the runtime image:\n${found}`);
  });
});

describe("the image on a named volume (SQLite)", () => {
  const volume = `dtx-image-test-${RUN_ID}`;
  const gid = `image-sqlite-${RUN_ID}`;

  test("answers health, runs a saga, and a new container on the same volume finds it", async () => {
    await podman("volume", "create", "--label", LABEL, volume);
    const first = coordinator();
    await first.start(["-v", `${volume}:/data`], {});
    // The image's own HEALTHCHECK command, run inside the container.
    await podman("healthcheck", "run", first.name);

    const ended = await runSaga(first, busi, gid);
    assert.equal(ended.transaction?.status, "succeed");
    assert.deepEqual(callNames(busi, gid), ["TransOut", "TransIn"]);
    assert.equal(await first.stop(), 0, "a SIGTERM stop exits 0");

    const second = coordinator();
    await second.start(["-v", `${volume}:/data`], {});
    const found = await query(second, gid);
    assert.equal(found.transaction?.status, "succeed");
    const actions = (found.branches ?? []).filter((b) => b.op === "action").map((b) => `${b.branch_id}:${b.status}`);
    assert.deepEqual(actions, ["01:succeed", "02:succeed"], "the branches are stored too");
    const owner = (await podman("run", "--rm", ...RUN_FLAGS, "-v", `${volume}:/data`, "--entrypoint", "stat", IMAGE, "-c", "%u", "/data/dtx.db")).stdout.trim();
    assert.equal(owner, "1000", "the database file belongs to node");
    assert.equal(await second.stop(), 0);
  });
});

/** examples/participant.ts run by the image's Node, as docker-compose.yml's cluster profile runs it. */
async function startSampleParticipant(): Promise<{ name: string; url(step: string): string }> {
  const name = `dtx-image-test-${RUN_ID}-participant`;
  const port = await freePort();
  const file = new URL("../../examples/participant.ts", import.meta.url).pathname;
  await podman("run", "-d", "--name", name, ...RUN_FLAGS, "-v", `${file}:/app/examples/participant.ts:ro`, "-e", "HOST=127.0.0.1", "-e", `PORT=${port}`, IMAGE, "node", "examples/participant.ts");
  const base = `http://127.0.0.1:${port}/api`;
  await waitFor("the sample participant to answer", async () => ((await fetch(`${base}/TransOut`, { method: "POST" })).ok ? true : undefined));
  return { name, url: (step) => `${base}/${step}` };
}

describe("the image on the host's PostgreSQL", () => {
  const pg = new PgArea("image");
  before(() => pg.open());
  after(() => pg.close());

  test("runs a saga with the store in a schema of its own, and a new container finds it", async () => {
    const gid = `image-pg-${RUN_ID}`;
    const env = { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: pg.url, DTX_STORE_SCHEMA: pg.schema };
    const first = coordinator();
    // As deploy/k8s runs it: read-only root filesystem (podman adds a tmpfs /tmp, like the emptyDir).
    await first.start(["--read-only"], env);
    const ended = await runSaga(first, busi, gid);
    assert.equal(ended.transaction?.status, "succeed");
    assert.deepEqual(callNames(busi, gid), ["TransOut", "TransIn"]);
    const rows = await pg.query<{ status: string }>(`SELECT status FROM ${pg.table("trans_global")} WHERE gid = $1`, [gid]);
    assert.deepEqual(rows, [{ status: "succeed" }]);

    const participant = await startSampleParticipant();
    const viaSample = `${gid}-sample`;
    assert.equal((await runSaga(first, participant, viaSample)).transaction?.status, "succeed");
    const { stdout } = await podman("logs", participant.name);
    assert.match(stdout, new RegExp(`POST /api/TransOut gid=${viaSample} branch_id=01 op=action`));
    assert.match(stdout, new RegExp(`POST /api/TransIn gid=${viaSample} branch_id=02 op=action`));
    await podman("rm", "-f", "-v", "-t", "2", participant.name);
    assert.equal(await first.stop(), 0);

    const second = coordinator();
    await second.start([], env);
    assert.equal((await query(second, gid)).transaction?.status, "succeed");
    assert.equal(await second.stop(), 0);
  });
});
