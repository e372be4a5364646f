/**
 * Starting a chaos-world coordinator (test/chaos/world/coordinators.ts) when the port it was handed
 * is taken by the time it binds (CI, smoke, seed 20261206, mysql: "bind EADDRINUSE"): the start is
 * tried again on fresh ports, and the coordinator that comes up answers on them. A real coordinator
 * process on SQLite; the taken port is held by a real listening socket.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo, Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { killAll } from "../chaos/world/child.ts";
import { startCoordinator } from "../chaos/world/coordinators.ts";
import { PROFILES } from "../chaos/profile.ts";
import { freePort } from "../helpers/processes.ts";

const dir = mkdtempSync(join(tmpdir(), "dtx-chaos-coordinators-"));
let holder: Server | undefined;
afterAll(async () => {
  killAll();
  await new Promise<void>((resolve) => (holder ? holder.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

it("a start that failed only because its port was taken is tried again on fresh ports", async () => {
  holder = createServer();
  await new Promise<void>((resolve) => holder?.listen(0, "127.0.0.1", resolve));
  const taken = (holder.address() as AddressInfo).port;
  let handedOut = 0;
  const ports = async (): Promise<number> => (handedOut++ === 0 ? taken : freePort());

  const coordinator = await startCoordinator({ index: 0, store: "sqlite", runDir: dir, timings: PROFILES.smoke.timings, ports });

  expect(handedOut).toBe(4);
  expect(coordinator.httpUrl).not.toContain(`:${taken}`);
  const ping = await fetch(`${coordinator.httpUrl}/api/ping`);
  expect(await ping.json()).toEqual({ msg: "pong" });
  expect(readFileSync(join(dir, "coordinator-0.log"), "utf8")).toContain("EADDRINUSE");
}, 60_000);
