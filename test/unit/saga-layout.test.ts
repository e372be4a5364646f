import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { PassBranch } from "../../server/src/core/pass.ts";
import type { SagaCustomData } from "../../server/src/core/saga-layout.ts";
import { parseSagaCustomData, sagaLayout } from "../../server/src/core/saga-layout.ts";

function ok(customData: string, steps: number): SagaCustomData {
  const parsed = parseSagaCustomData(customData, steps);
  if ("problem" in parsed) throw new Error(`unexpected problem: ${parsed.problem}`);
  return parsed;
}

function problem(customData: string, steps: number): string {
  const parsed = parseSagaCustomData(customData, steps);
  if (!("problem" in parsed)) throw new Error(`expected a problem for ${customData}`);
  return parsed.problem;
}

/** Standard saga branches (docs/protocol.md#saga): step i -> [compensate, action] with branch_id %02d of i+1. */
function sagaBranches(steps: number): PassBranch[] {
  const out: PassBranch[] = [];
  for (let i = 0; i < steps; i++) {
    const id = String(i + 1).padStart(2, "0");
    out.push({ branchId: id, op: "compensate", url: `http://rm/c${i}`, status: "prepared" });
    out.push({ branchId: id, op: "action", url: `http://rm/a${i}`, status: "prepared" });
  }
  return out;
}

describe("parseSagaCustomData", () => {
  it("empty custom data is a sequential saga with no orders", () => {
    for (const text of ["", "   ", "\n"]) {
      const parsed = ok(text, 3);
      expect(parsed.concurrent).toBe(false);
      expect(parsed.orders.size).toBe(0);
    }
    expect(ok("{}", 3)).toEqual({ concurrent: false, orders: new Map() });
  });

  it("reads the concurrent flag (only a JSON true counts)", () => {
    expect(ok('{"concurrent":true}', 2).concurrent).toBe(true);
    expect(ok('{"concurrent":false}', 2).concurrent).toBe(false);
    expect(ok('{"concurrent":"true"}', 2).concurrent).toBe(false);
    expect(ok('{"concurrent":1}', 2).concurrent).toBe(false);
  });

  it("reads orders", () => {
    const parsed = ok('{"concurrent":true,"orders":{"1":[0],"2":[0,1],"3":[]}}', 4);
    expect(parsed.concurrent).toBe(true);
    expect(parsed.orders).toEqual(
      new Map([
        [1, [0]],
        [2, [0, 1]],
        [3, []],
      ]),
    );
    // A backward order is fine for the graph itself.
    expect(ok('{"concurrent":true,"orders":{"0":[2]}}', 3).orders).toEqual(new Map([[0, [2]]]));
    expect(ok('{"orders":null}', 2).orders.size).toBe(0);
  });

  it("rejects an unknown step index, as a key or as a prerequisite", () => {
    expect(problem('{"orders":{"3":[0]}}', 3)).toContain('"3"');
    expect(problem('{"orders":{"-1":[0]}}', 3)).toContain('"-1"');
    expect(problem('{"orders":{"1":[5]}}', 3)).toMatch(/orders\[1\] names unknown step 5/);
    expect(problem('{"orders":{"1":[-1]}}', 3)).toMatch(/unknown step -1/);
    expect(problem('{"orders":{"0":[0]}}', 0)).toContain('"0"');
  });

  it("rejects prerequisites that are not integers", () => {
    expect(problem('{"orders":{"1":[0.5]}}', 3)).toContain("0.5");
    expect(problem('{"orders":{"1":["0"]}}', 3)).toContain('"0"');
    expect(problem('{"orders":{"1":[null]}}', 3)).toContain("null");
    expect(problem('{"orders":{"1":0}}', 3)).toContain("orders[1] must be an array");
    expect(problem('{"orders":{"1":{"0":true}}}', 3)).toContain("orders[1] must be an array");
  });

  it("rejects keys that are not canonical decimal integers", () => {
    for (const key of ["1.5", "01", " 1", "1e0", "abc", "", "0x1", "+1"]) {
      expect(problem(JSON.stringify({ orders: { [key]: [0] } }), 3), key).toContain(JSON.stringify(key));
    }
  });

  it("rejects a self dependency", () => {
    expect(problem('{"orders":{"1":[1]}}', 3)).toBe("orders[1] depends on itself");
  });

  it("rejects a cycle and shows it", () => {
    expect(problem('{"orders":{"0":[1],"1":[0]}}', 2)).toBe("orders form a cycle: 0 -> 1 -> 0");
    expect(problem('{"concurrent":true,"orders":{"0":[2],"1":[0],"2":[1]}}', 3)).toBe("orders form a cycle: 0 -> 2 -> 1 -> 0");
    // A cycle that does not start at step 0, behind an acyclic part.
    expect(problem('{"orders":{"0":[1],"1":[2],"2":[3],"3":[1]}}', 4)).toBe("orders form a cycle: 1 -> 2 -> 3 -> 1");
  });

  it("rejects custom data that is not a JSON object", () => {
    for (const text of ["[]", "[1]", "42", "null", '"text"', "true"]) expect(problem(text, 2), text).toBe("custom_data must be a JSON object");
    expect(problem("not json", 2)).toBe("custom_data is not valid JSON");
    expect(problem("{", 2)).toBe("custom_data is not valid JSON");
  });

  it("rejects orders that are not an object", () => {
    for (const orders of ["[]", "[[0]]", '"x"', "1", "true"]) {
      expect(problem(`{"orders":${orders}}`, 2), orders).toBe("orders must be an object of step -> [steps]");
    }
  });

  it("accepts every acyclic graph and reports a real cycle for every cyclic one (property)", () => {
    const graph = fc
      .integer({ min: 1, max: 7 })
      .chain((n) => fc.tuple(fc.constant(n), fc.array(fc.tuple(fc.nat({ max: n - 1 }), fc.nat({ max: n - 1 })), { maxLength: 14 })));
    fc.assert(
      fc.property(graph, ([n, edges]) => {
        const orders = new Map<number, number[]>();
        for (const [step, pre] of edges) {
          if (step === pre) continue;
          const list = orders.get(step) ?? [];
          if (!list.includes(pre)) list.push(pre);
          orders.set(step, list);
        }
        const text = JSON.stringify({ concurrent: true, orders: Object.fromEntries([...orders].map(([k, v]) => [String(k), v])) });
        const parsed = parseSagaCustomData(text, n);
        const cyclic = hasCycle(orders, n);
        if (!cyclic) {
          expect(parsed).toEqual({ concurrent: true, orders });
          return;
        }
        expect("problem" in parsed).toBe(true);
        const shown = "problem" in parsed ? parsed.problem : "";
        const m = /^orders form a cycle: ([\d >-]+)$/.exec(shown);
        expect(m, shown).not.toBeNull();
        const path = (m?.[1] ?? "").split(" -> ").map(Number);
        expect(path.length).toBeGreaterThanOrEqual(3);
        expect(path[0]).toBe(path[path.length - 1]);
        for (let i = 0; i + 1 < path.length; i++) {
          expect(orders.get(path[i] ?? -1) ?? []).toContain(path[i + 1]);
        }
      }),
      { numRuns: 400 },
    );
  });
});

function hasCycle(orders: ReadonlyMap<number, readonly number[]>, n: number): boolean {
  // Kahn: a graph is acyclic iff every node can be removed.
  const indegree = new Array<number>(n).fill(0);
  for (const pre of orders.values()) for (const p of pre) indegree[p] = (indegree[p] ?? 0) + 1;
  const queue = [...Array(n).keys()].filter((i) => indegree[i] === 0);
  let removed = 0;
  while (queue.length > 0) {
    const node = queue.pop() ?? 0;
    removed += 1;
    for (const p of orders.get(node) ?? []) {
      indegree[p] = (indegree[p] ?? 0) - 1;
      if (indegree[p] === 0) queue.push(p);
    }
  }
  return removed < n;
}

describe("sagaLayout", () => {
  it("maps steps to branch indexes (2i = compensate, 2i+1 = action)", () => {
    const layout = sagaLayout(sagaBranches(3), "");
    expect(layout.actions).toEqual([1, 3, 5]);
    expect(layout.compensations).toEqual([0, 2, 4]);
    expect(layout.concurrent).toBe(false);
    expect(layout.orders.size).toBe(0);
    expect(layout.dependents.size).toBe(0);
  });

  it("handles ten steps and more (branch_id 10, 11)", () => {
    const layout = sagaLayout(sagaBranches(12), "");
    expect(layout.actions).toHaveLength(12);
    expect(layout.actions[9]).toBe(19);
    expect(layout.compensations[11]).toBe(22);
  });

  it("builds dependents, the reverse of orders", () => {
    const layout = sagaLayout(sagaBranches(4), '{"concurrent":true,"orders":{"1":[0],"2":[0],"3":[1,2]}}');
    expect(layout.concurrent).toBe(true);
    expect(new Map([...layout.dependents].map(([k, v]) => [k, [...v].sort()]))).toEqual(
      new Map([
        [0, [1, 2]],
        [1, [3]],
        [2, [3]],
      ]),
    );
  });

  it("falls back to a plain sequential saga when the stored custom data is invalid", () => {
    for (const bad of ["nope", '{"concurrent":true,"orders":{"0":[1],"1":[0]}}', '{"orders":{"9":[0]}}']) {
      const layout = sagaLayout(sagaBranches(2), bad);
      expect(layout.concurrent).toBe(false);
      expect(layout.orders.size).toBe(0);
      expect(layout.actions).toEqual([1, 3]);
    }
  });

  it("does not depend on the row order of the branches", () => {
    const shuffled = [...sagaBranches(3)].reverse();
    const layout = sagaLayout(shuffled, "");
    for (let step = 0; step < 3; step++) {
      const a = layout.actions[step];
      const c = layout.compensations[step];
      expect(a === undefined ? undefined : shuffled[a]).toMatchObject({ op: "action", branchId: `0${step + 1}` });
      expect(c === undefined ? undefined : shuffled[c]).toMatchObject({ op: "compensate", branchId: `0${step + 1}` });
    }
  });
});
