/** Row builders and comparison helpers shared by the store conformance suites. */
import { DEFAULT_OPTIONS } from "../../../server/src/core/options.ts";
import type { Branch, TransGlobal } from "../../../server/src/core/types.ts";
import type { NewBranch, NewTrans, Store } from "../../../server/src/store/store.ts";

/** A fixed "now" with whole seconds; tests add single milliseconds to check precision. */
export const T0 = 1_700_000_000_000;

export function trans(gid: string, o: Partial<NewTrans> = {}): NewTrans {
  return {
    gid,
    transType: "saga",
    status: "submitted",
    protocol: "http",
    queryPrepared: "",
    customData: "",
    options: { ...DEFAULT_OPTIONS, branchHeaders: {} },
    extData: "",
    createTime: T0,
    updateTime: T0,
    finishTime: null,
    rollbackTime: null,
    rollbackReason: "",
    result: "",
    nextCronInterval: 10_000,
    nextCronTime: T0 + 10_000,
    owner: "",
    ...o,
  };
}

export function branch(gid: string, branchId: string, op: string, o: Partial<NewBranch> = {}): NewBranch {
  return {
    gid,
    branchId,
    op,
    url: `http://rm.local/${branchId}/${op}`,
    binData: new TextEncoder().encode(`{"step":"${branchId}"}`),
    status: "prepared",
    createTime: T0,
    updateTime: T0,
    finishTime: null,
    ...o,
  };
}

export function sagaBranches(gid: string, steps: number): NewBranch[] {
  const out: NewBranch[] = [];
  for (let i = 1; i <= steps; i++) {
    const id = String(i).padStart(2, "0");
    out.push(branch(gid, id, "compensate"), branch(gid, id, "action"));
  }
  return out;
}

/** Branch rows without the store-assigned id, with the payload as plain bytes, for comparisons. */
export function plain(branches: readonly (Branch | NewBranch)[]): object[] {
  return branches.map((b) => {
    const { binData, ...rest } = b;
    if ("id" in rest) delete (rest as { id?: number }).id;
    return { ...rest, binData: [...binData] };
  });
}

export async function mustFind(s: Store, gid: string): Promise<TransGlobal> {
  const t = await s.findTrans(gid);
  if (!t) throw new Error(`${gid} not found`);
  return t;
}
