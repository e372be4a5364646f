// dtx / dtm branch barrier collection for MongoDB (docs/protocol.md#barrier-table), for mongosh.
// Mongo transactions need a replica set. Idempotent.
db.getSiblingDB("dtm_barrier").barrier.createIndex(
  { gid: 1, branch_id: 1, op: 1, barrier_id: 1 },
  { unique: true, name: "uniq_barrier" },
);
