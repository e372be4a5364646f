-- dtx / dtm branch barrier table for MySQL and MariaDB (docs/protocol.md#barrier-table). Idempotent.
-- Create it in the database your participant's business tables live in (the barrier row and the
-- business change must commit in one local transaction).
--
-- dtm's columns, but leaner than dtm's sqls/dtmcli.barrier.mysql.sql: InnoDB clusters the rows on
-- the key (gid, branch_id, op, barrier_id), so a barrier row is one B-tree entry plus the
-- create_time index, instead of four (auto-increment id, unique key, create_time, update_time).
-- dtm's SDKs (`insert ignore`) can share this table, and @dtx/sdk works unchanged on a table
-- created by dtm's DDL. utf8mb4_bin: gids and branch ids are case-sensitive (dtm's table uses
-- utf8mb4's default collation, which is not, so "Ab" and "aB" would share barrier rows there).
create database if not exists dtm_barrier /*!40100 DEFAULT CHARACTER SET utf8mb4 */;

create table if not exists dtm_barrier.barrier(
  trans_type varchar(45) default '',
  gid varchar(128) default '',
  branch_id varchar(128) default '',
  op varchar(45) default '',
  barrier_id varchar(45) default '',
  reason varchar(45) default '' comment 'the branch type who insert this record',
  create_time datetime DEFAULT now(),
  update_time datetime DEFAULT now(),
  PRIMARY KEY(gid, branch_id, op, barrier_id),
  key(create_time)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
