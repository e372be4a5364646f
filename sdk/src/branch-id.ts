import { invalidArgument } from "./errors.ts";

/**
 * dtm's `BranchIDGen` (docs/protocol.md#what-clients-send): sub-branch ids `<parent><%02d>` counting from `01`. A nested
 * TCC started from branch `02` numbers its branches `0201`, `0202`, ...
 */
export class BranchIdGen {
  #count = 0;

  /** @param parent the id of the branch this generator nests under ("" at the top level) */
  constructor(readonly parent = "") {}

  /** The next sub-branch id. Throws INVALID_ARGUMENT beyond 99 sub-branches or when the parent id has 20 characters or more. */
  next(): string {
    if (this.#count >= 99) throw invalidArgument("a transaction can have at most 99 sub-branches per level");
    if (this.parent.length >= 20) throw invalidArgument(`branch id ${this.parent} is too long to nest under (max 19 characters)`);
    this.#count += 1;
    return `${this.parent}${String(this.#count).padStart(2, "0")}`;
  }

  /** The last id {@link next} returned ("" before the first call). */
  get current(): string {
    return this.#count === 0 ? "" : `${this.parent}${String(this.#count).padStart(2, "0")}`;
  }
}
