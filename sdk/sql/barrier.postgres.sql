-- dtx / dtm branch barrier table for PostgreSQL (PROTOCOL.md §11.1).
-- Same columns and constraint as dtm's sqls/dtmcli.barrier.postgres.sql (without its
-- `drop table`), so dtm's SDKs and @dtx/sdk can share it. Create it in the database your
-- participant's business tables live in. Idempotent.
create schema if not exists dtm_barrier;

create sequence if not exists dtm_barrier.barrier_seq;

create table if not exists dtm_barrier.barrier(
  id bigint NOT NULL DEFAULT NEXTVAL ('dtm_barrier.barrier_seq'),
  trans_type varchar(45) default '',
  gid varchar(128) default '',
  branch_id varchar(128) default '',
  op varchar(45) default '',
  barrier_id varchar(45) default '',
  reason varchar(45) default '',
  create_time timestamp(0) with time zone DEFAULT NULL,
  update_time timestamp(0) with time zone DEFAULT NULL,
  PRIMARY KEY(id),
  CONSTRAINT uniq_barrier unique(gid, branch_id, op, barrier_id)
);
