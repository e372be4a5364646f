/**
 * A two-phase message with the SDK: `npm start`, then `npx tsx examples/sdk-msg.ts`.
 * doAndSubmit prepares the msg, runs the local transaction, then submits; the coordinator
 * delivers TransIn. If the local transaction's outcome were unknown, QueryPrepared decides.
 */
import { DtxClient, Msg } from "../sdk/src/index.ts";
import { DTX_SERVER, startDemoParticipant } from "./sdk-participant.ts";

const client = new DtxClient({ server: DTX_SERVER });
const p = await startDemoParticipant();
try {
  const msg = new Msg(client, undefined, { waitResult: true }).add(`${p.api}/TransIn`, { amount: 30 });
  await msg.doAndSubmit(`${p.api}/QueryPrepared`, async () => {
    console.log("  local transaction: debit 30");
  });
  console.log(`msg ${msg.gid}: delivered`);
} finally {
  await p.close();
  await client.close();
}
