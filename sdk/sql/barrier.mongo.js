// dtx / dtm branch barrier collection for MongoDB (PROTOCOL.md §11.1), for mongosh.
// Mongo transactions need a replica set. Idempotent.
db.getSiblingDB("dtm_barrier").barrier.createIndex(
  { gid: 1, branch_id: 1, op: 1, barrier_id: 1 },
  { unique: true, name: "uniq_barrier" },
);
