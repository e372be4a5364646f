import { describeValue, quoteName } from "./echo.ts";
import type { PassBranch } from "./pass.ts";

/** A saga's steps: which branch index holds each step's action and compensation. */
export interface SagaLayout {
  readonly actions: number[];
  readonly compensations: number[];
  readonly concurrent: boolean;
  /** `orders[step]` = steps whose actions must succeed before `step` may start. */
  readonly orders: ReadonlyMap<number, readonly number[]>;
  /** `dependents[step]` = steps that list `step` as a prerequisite (for reverse-order compensation). */
  readonly dependents: ReadonlyMap<number, readonly number[]>;
}

export interface SagaCustomData {
  concurrent: boolean;
  orders: Map<number, number[]>;
}

export type OrdersProblem = { problem: string };

/**
 * Parses saga `custom_data` (`{"concurrent":true,"orders":{"1":[0]}}`) and checks the order
 * graph: every index must name a step and the graph must have no cycle.
 */
export function parseSagaCustomData(customData: string, stepCount: number): SagaCustomData | OrdersProblem {
  if (customData.trim() === "") return { concurrent: false, orders: new Map() };
  let raw: unknown;
  try {
    raw = JSON.parse(customData);
  } catch {
    return { problem: "custom_data is not valid JSON" };
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return { problem: "custom_data must be a JSON object" };
  const record = raw as Record<string, unknown>;
  const concurrent = record["concurrent"] === true;
  const orders = new Map<number, number[]>();
  const rawOrders = record["orders"];
  if (rawOrders !== undefined && rawOrders !== null) {
    if (typeof rawOrders !== "object" || Array.isArray(rawOrders)) return { problem: "orders must be an object of step -> [steps]" };
    for (const [key, value] of Object.entries(rawOrders as Record<string, unknown>)) {
      const step = Number(key);
      if (!isStepIndex(step, stepCount) || String(step) !== key) return { problem: `orders names unknown step ${quoteName(key)}` };
      if (!Array.isArray(value)) return { problem: `orders[${key}] must be an array of step indexes` };
      const pre: number[] = [];
      for (const p of value) {
        if (typeof p !== "number" || !isStepIndex(p, stepCount)) return { problem: `orders[${key}] names unknown step ${describeValue(p)}` };
        if (p === step) return { problem: `orders[${key}] depends on itself` };
        pre.push(p);
      }
      orders.set(step, pre);
    }
  }
  // A sequential saga also runs step i after step i-1, so check that chain together with orders.
  const graph = new Map(orders);
  if (!concurrent) {
    for (let step = 1; step < stepCount; step++) graph.set(step, [...(graph.get(step) ?? []), step - 1]);
  }
  const cycle = findCycle(graph, stepCount);
  if (cycle) return { problem: `orders form a cycle: ${cycle.join(" -> ")}` };
  return { concurrent, orders };
}

function isStepIndex(n: number, stepCount: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < stepCount;
}

function findCycle(orders: ReadonlyMap<number, readonly number[]>, stepCount: number): number[] | undefined {
  const state = new Array<0 | 1 | 2>(stepCount).fill(0);
  const stack: number[] = [];
  const visit = (node: number): number[] | undefined => {
    state[node] = 1;
    stack.push(node);
    for (const next of orders.get(node) ?? []) {
      if (state[next] === 1) return [...stack.slice(stack.indexOf(next)), next];
      if (state[next] === 0) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
    state[node] = 2;
    return undefined;
  };
  for (let i = 0; i < stepCount; i++) {
    if (state[i] === 0) {
      const found = visit(i);
      if (found) return found;
    }
  }
  return undefined;
}

/** Builds the layout from the stored branches (`branch_id` "01" is step 0, and so on). */
export function sagaLayout(branches: readonly PassBranch[], customData: string): SagaLayout {
  const actions: number[] = [];
  const compensations: number[] = [];
  branches.forEach((b, index) => {
    const step = Number.parseInt(b.branchId, 10) - 1;
    if (!(step >= 0)) return;
    if (b.op === "action") actions[step] = index;
    else if (b.op === "compensate") compensations[step] = index;
  });
  const parsed = parseSagaCustomData(customData, actions.length);
  const custom = "problem" in parsed ? { concurrent: false, orders: new Map<number, number[]>() } : parsed;
  const dependents = new Map<number, number[]>();
  for (const [step, pre] of custom.orders) {
    for (const p of pre) dependents.set(p, [...(dependents.get(p) ?? []), step]);
  }
  return { actions, compensations, concurrent: custom.concurrent, orders: custom.orders, dependents };
}
