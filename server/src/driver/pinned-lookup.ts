import { isIP } from "node:net";
import type { LookupFunction } from "node:net";

/**
 * Resolves a host name for connecting when the branch URL policy is on: to the addresses that
 * pass the policy, or rejects with the reason (docs/security.md#pinned-addresses). The transports
 * connect to what it answers and never resolve the name themselves, so a name that resolves
 * differently the second time (DNS rebinding) cannot reach an address the policy denies.
 */
export type ConnectResolver = (host: string) => Promise<string[]>;

/**
 * A `net.connect` lookup (undici's `connect.lookup`) answering from `resolve`. Node asks for one
 * address or, with `all` (its happy-eyeballs connect), for every one.
 */
export function pinnedLookup(resolve: ConnectResolver): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => isIP(a) === options.family) : addresses;
        const found = wanted.map((address) => ({ address, family: isIP(address) }));
        const first = found[0];
        if (!first) {
          callback(Object.assign(new Error(`${hostname} resolves to no usable address`), { code: "ENOTFOUND" }), "", 0);
        } else if (options.all) {
          callback(null, found);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: unknown) => callback(error as NodeJS.ErrnoException, "", 0),
    );
  };
}
