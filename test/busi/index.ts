/** Programmable fake participant for end-to-end tests; see {@link startBusi}. */
export { Busi, describeCall, matches, startBusi } from "./busi.ts";
export type { BusiCall, BusiOptions, CallMatch, Outcome } from "./busi.ts";
