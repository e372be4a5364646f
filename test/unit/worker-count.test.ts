import { describe, expect, it } from "vitest";
import { storeIsOnThisMachine, workerCount } from "../../server/src/cluster/worker-count.ts";
import { loadConfig } from "../../server/src/config.ts";

describe("workerCount: coordinator processes", () => {
  const remotePg = { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: "postgres://u@db.example/db" };
  const localPg = { DTX_STORE_DRIVER: "postgres", DTX_STORE_URL: "postgres://u@127.0.0.1:5432/db" };
  const count = (env: Record<string, string>, cores: number): ReturnType<typeof workerCount> => workerCount(loadConfig(env, []), cores);

  it("one per core on a network store on another machine", () => {
    expect(count(remotePg, 2)).toEqual({ workers: 2, reason: "cores" });
    expect(count(remotePg, 8)).toEqual({ workers: 8, reason: "cores" });
    expect(count(remotePg, 1)).toEqual({ workers: 1, reason: "cores" });
    expect(count(remotePg, 200).workers).toBe(64);
  });

  it("one core left to a store server on this machine, never fewer than one worker", () => {
    expect(count(localPg, 2)).toEqual({ workers: 1, reason: "cores-less-local-store" });
    expect(count(localPg, 8)).toEqual({ workers: 7, reason: "cores-less-local-store" });
    expect(count(localPg, 1)).toEqual({ workers: 1, reason: "cores-less-local-store" });
    expect(count({ DTX_STORE_DRIVER: "redis", DTX_STORE_URL: "redis://localhost:6379" }, 4).workers).toBe(3);
    expect(count({ DTX_STORE_DRIVER: "mysql", DTX_STORE_URL: "mysql://u@[::1]:3306/dtx" }, 4).workers).toBe(3);
  });

  it("the setting wins, whatever the store", () => {
    expect(count({ ...localPg, DTX_WORKERS: "2" }, 2)).toEqual({ workers: 2, reason: "setting" });
    expect(count({ ...remotePg, DTX_WORKERS: "3" }, 8)).toEqual({ workers: 3, reason: "setting" });
    expect(count({ ...remotePg, DTX_WORKERS: "1" }, 8)).toEqual({ workers: 1, reason: "setting" });
  });

  it("one on the embedded SQLite store and with the test-control API", () => {
    expect(count({}, 8)).toEqual({ workers: 1, reason: "sqlite" });
    expect(count({ DTX_WORKERS: "1" }, 8)).toEqual({ workers: 1, reason: "setting" });
    expect(count({ ...remotePg, DTX_TEST_CONTROL: "1" }, 8)).toEqual({ workers: 1, reason: "test-control" });
  });
});

describe("storeIsOnThisMachine", () => {
  it("loopback hosts and Unix sockets are this machine", () => {
    for (const url of [
      "postgres://u:p@localhost/db", "postgres://u@127.0.0.1:5432/db", "postgres://u@127.1.2.3/db", "redis://[::1]:6379",
      "redis://LOCALHOST:6379/0", "mysql://u@db.localhost/dtx", "postgres://u@h/db?host=/run/postgresql",
      "mysql://u@h/dtx?socketPath=/run/mysqld/mysqld.sock",
    ]) expect(storeIsOnThisMachine(url), url).toBe(true);
  });

  it("other hosts, look-alikes and unparsable URLs are not", () => {
    for (const url of [
      "postgres://u@db.example/db", "redis://10.0.0.5:6379", "redis://127.0.0.1.example.com:6379", "mysql://u@localhost.example/dtx",
      "redis://[::2]:6379", "postgres://u@h/db?host=db.internal", "not a url",
    ]) expect(storeIsOnThisMachine(url), url).toBe(false);
  });
});
