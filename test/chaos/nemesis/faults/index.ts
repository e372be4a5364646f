/** The registry of nemesis faults: one line per fault (its file is the whole fault). */
import type { Fault } from "../fault.ts";
import { coordinatorKill } from "./coordinator-kill.ts";
import { coordinatorPause } from "./coordinator-pause.ts";
import { participantDbCrash } from "./participant-db-crash.ts";
import { participantKill } from "./participant-kill.ts";
import { storeBlackhole } from "./store-blackhole.ts";
import { storeCrash } from "./store-crash.ts";

export const FAULTS: readonly Fault[] = [
  coordinatorKill,
  coordinatorPause,
  storeCrash,
  participantDbCrash,
  storeBlackhole,
  participantKill,
];
