-- dtx / dtm branch barrier table for PostgreSQL (docs/protocol.md#barrier-table). Idempotent.
-- Create it in the database your participant's business tables live in.
--
-- dtm's columns, but leaner than dtm's sqls/dtmcli.barrier.postgres.sql: the key
-- (gid, branch_id, op, barrier_id) is the primary key and there is no serial id (dtm has both:
-- two index entries and a sequence step per barrier row). The key keeps dtm's constraint name,
-- so dtm's SDKs (`on conflict ON CONSTRAINT uniq_barrier`) can share this table, and @dtx/sdk
-- works unchanged on a table created by dtm's DDL. The key's columns are `collate "C"`: compared
-- byte for byte (case-sensitive, and cheaper than a locale's comparison) whatever the database's
-- default collation.
create schema if not exists dtm_barrier;

create table if not exists dtm_barrier.barrier(
  trans_type varchar(45) default '',
  gid varchar(128) collate "C" default '',
  branch_id varchar(128) collate "C" default '',
  op varchar(45) collate "C" default '',
  barrier_id varchar(45) collate "C" default '',
  reason varchar(45) default '',
  create_time timestamp(0) with time zone DEFAULT NULL,
  update_time timestamp(0) with time zone DEFAULT NULL,
  CONSTRAINT uniq_barrier PRIMARY KEY(gid, branch_id, op, barrier_id)
);
