/**
 * The node flags every shipped way of starting dtx passes (`npm start`, the `dtx` bin's shebang,
 * the Docker image's CMD; a test keeps those three equal to this list). docs/overload.md#heap says
 * why each is there:
 *
 * - `--max-old-space-size=160` caps the heap the overload limits are sized for;
 * - `--max-semi-space-size=8` keeps the young generation small (RSS) at some CPU cost;
 * - `--heap-growing-percent=200` lets the old generation grow to 3× its live size before the next
 *   full collection. Under a 160 MB cap V8 would allow only 1.3×: with ~30 MB live that was a
 *   mark-compact every ~0.5 s at C = 64, 16 % of the coordinator's CPU per saga. The cap still bounds it.
 */
export const HEAP_FLAGS = ["--max-semi-space-size=8", "--max-old-space-size=160", "--heap-growing-percent=200"] as const;
