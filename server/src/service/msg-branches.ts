import { CoordinatorError } from "../core/errors.ts";
import type { NewBranch } from "../store/store.ts";
import type { RequestLimits, TransRequest } from "./request.ts";
import { checkBranchUrl } from "./request.ts";
import type { TopicService } from "./topic-service.ts";

export const TOPIC_PREFIX = "topic://";

/** Checks a msg request's steps: each action is a branch URL or `topic://<name>`. */
export function checkMsgShape(req: TransRequest, limits: RequestLimits): void {
  if (req.steps.length > limits.maxBranches) {
    throw new CoordinatorError("TOO_MANY_BRANCHES", `a msg of ${req.steps.length} steps exceeds the limit of ${limits.maxBranches} branches`);
  }
  req.steps.forEach((step, i) => {
    const action = step["action"] ?? "";
    if (action.startsWith(TOPIC_PREFIX)) {
      if (action.length === TOPIC_PREFIX.length) throw new CoordinatorError("INVALID_URL", `steps[${i}].action names an empty topic`);
      return;
    }
    checkBranchUrl(action, req.protocol, `steps[${i}].action`, limits.urlPolicy);
  });
}

/**
 * msg branches (docs/protocol.md#msg): one `action` per step, or, for a `topic://` step, one per
 * subscriber with branch_id `<step>-<subscriber>` (1-based) when the topic has several.
 */
export async function generateMsgBranches(req: TransRequest, now: number, topics: TopicService, limits: RequestLimits): Promise<NewBranch[]> {
  const out: NewBranch[] = [];
  for (const [i, step] of req.steps.entries()) {
    const action = step["action"] ?? "";
    const payload = req.payloads[i] ?? new Uint8Array(0);
    const stepId = String(i + 1).padStart(2, "0");
    let urls = [action];
    if (action.startsWith(TOPIC_PREFIX)) {
      const topic = action.slice(TOPIC_PREFIX.length);
      urls = await topics.subscribers(topic);
      if (urls.length === 0) throw new CoordinatorError("TOPIC_HAS_NO_SUBSCRIBERS", `topic ${topic} has no subscribers (steps[${i}])`);
      // A subscription may predate a policy change.
      for (const url of urls) limits.urlPolicy?.check(url, `steps[${i}] (topic ${topic} subscriber)`);
    }
    urls.forEach((url, j) => {
      const branchId = urls.length === 1 ? stepId : `${stepId}-${String(j + 1).padStart(2, "0")}`;
      out.push({ gid: req.gid, branchId, op: "action", url, binData: payload, status: "prepared", createTime: now, updateTime: now, finishTime: null });
    });
  }
  if (out.length > limits.maxBranches) {
    throw new CoordinatorError("TOO_MANY_BRANCHES", `the msg expands to ${out.length} branches; the limit is ${limits.maxBranches}`);
  }
  return out;
}
