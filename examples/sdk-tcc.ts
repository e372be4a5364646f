/**
 * TCC with the SDK: `npm start`, then `npx tsx examples/sdk-tcc.ts`.
 * Each callBranch registers Confirm/Cancel and calls the Try; the second transaction's Try fails,
 * so the coordinator cancels both branches.
 */
import { DtxClient, isFailure, tccGlobalTransaction } from "../sdk/src/index.ts";
import { DTX_SERVER, startDemoParticipant } from "./sdk-participant.ts";

const client = new DtxClient({ server: DTX_SERVER });
const p = await startDemoParticipant();
try {
  await tccGlobalTransaction(client, undefined, async (tcc) => {
    await tcc.callBranch({ amount: 30 }, `${p.api}/TransOutTry`, `${p.api}/TransOutConfirm`, `${p.api}/TransOutCancel`);
    await tcc.callBranch({ amount: 30 }, `${p.api}/TransInTry`, `${p.api}/TransInConfirm`, `${p.api}/TransInCancel`);
  }, { waitResult: true });
  console.log("tcc: confirmed");

  await tccGlobalTransaction(client, undefined, async (tcc) => {
    await tcc.callBranch({ amount: 30 }, `${p.api}/TransOutTry`, `${p.api}/TransOutConfirm`, `${p.api}/TransOutCancel`);
    await tcc.callBranch({ amount: 30 }, `${p.api}/TransInTry?fail=1`, `${p.api}/TransInConfirm`, `${p.api}/TransInCancel`);
  }, { waitResult: true }).catch((err: unknown) => {
    if (!isFailure(err)) throw err;
    console.log(`tcc: cancelled (${(err as Error).message})`);
  });
} finally {
  await p.close();
  await client.close();
}
