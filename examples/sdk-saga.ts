/**
 * A saga with the SDK: `npm start` in one terminal, then `npx tsx examples/sdk-saga.ts`.
 * The second saga's last step answers FAILURE, so its first steps are compensated in reverse.
 */
import { DtxClient, Saga, isFailure } from "../sdk/src/index.ts";
import { DTX_SERVER, startDemoParticipant } from "./sdk-participant.ts";

const client = new DtxClient({ server: DTX_SERVER });
const p = await startDemoParticipant();
try {
  const saga = new Saga(client, undefined, { waitResult: true })
    .add(`${p.api}/TransOut`, `${p.api}/TransOutRevert`, { amount: 30 })
    .add(`${p.api}/TransIn`, `${p.api}/TransInRevert`, { amount: 30 });
  await saga.submit();
  console.log(`saga ${saga.gid}: succeed`);

  const failing = new Saga(client, undefined, { waitResult: true })
    .add(`${p.api}/TransOut`, `${p.api}/TransOutRevert`, { amount: 30 })
    .add(`${p.api}/TransIn?fail=1`, `${p.api}/TransInRevert`, { amount: 30 });
  await failing.submit().catch((err: unknown) => {
    if (!isFailure(err)) throw err;
    console.log(`saga ${failing.gid}: rolled back (${(err as Error).message})`);
  });
} finally {
  await p.close();
  await client.close();
}
