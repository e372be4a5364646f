/**
 * The node flags every shipped way of starting dtx passes (`npm start`, the `dtx` bin's shebang,
 * the Docker image's CMD; a test keeps those three equal to this list). docs/overload.md#heap says
 * why: `--max-old-space-size=160` caps the heap the overload limits are sized for, and a small
 * young generation keeps RSS under load below 150 MB, at some CPU cost (the same page measures
 * what `--heap-growing-percent=200` or a larger semi-space buy in CPU and cost in memory).
 */
export const HEAP_FLAGS = ["--max-semi-space-size=8", "--max-old-space-size=160"] as const;
