// Package compat runs dtm's own Go client (github.com/dtm-labs/client) against a running dtx.
//
// The harness (test/e2e/compat.test.ts, or scripts/compat.sh by hand) starts dtx and passes:
//
//	DTX_HTTP_URL     http://127.0.0.1:PORT (required)
//	DTX_GRPC_ADDR    127.0.0.1:PORT, only when dtx serves gRPC; the TestGrpc* cases need it
//	DTX_HARNESS_URL  a small control server that can SIGKILL dtx and start it again on the same
//	                 store and ports (POST /kill, POST /start); the resume-after-kill cases need it
//	DTX_TEST_MYSQL_URL, DTX_TEST_PG_URL  the databases (defaults: scripts/services.sh)
//
// Every case checks its outcome three ways: what dtm's client returned (no error where dtm
// returns none, the same error kind where dtm returns one), dtx's /api/dtmsvr/query, and the
// participants' databases and call log. The cases run one after the other.
package compat

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtm-labs/client/dtmcli"
	"github.com/dtm-labs/client/dtmcli/dtmimp"
	"github.com/dtm-labs/logger"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq"
)

var (
	dtxURL     string // http://127.0.0.1:PORT
	dtmServer  string // dtxURL + "/api/dtmsvr", what dtm's docs call DtmServer
	grpcAddr   string // 127.0.0.1:PORT or ""
	harnessURL string
	runID      string // makes gids unique across runs that share the databases

	mysqlConf dtmcli.DBConf
	pgConf    dtmcli.DBConf
	mysqlDB   *sql.DB
	pgDB      *sql.DB
)

func TestMain(m *testing.M) {
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	flag.Parse()
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return m.Run() // listing the cases needs neither dtx nor the databases
	}
	logger.WithLogger(quietLogger{})
	dtxURL = strings.TrimRight(os.Getenv("DTX_HTTP_URL"), "/")
	if dtxURL == "" {
		fmt.Fprintln(os.Stderr, "DTX_HTTP_URL is not set: start dtx (DTX_TEST_CONTROL=1) and pass its URL, e.g. DTX_HTTP_URL=http://127.0.0.1:36789")
		return 2
	}
	dtmServer = dtxURL + "/api/dtmsvr"
	grpcAddr = os.Getenv("DTX_GRPC_ADDR")
	harnessURL = strings.TrimRight(os.Getenv("DTX_HARNESS_URL"), "/")
	runID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + strconv.Itoa(rand.Intn(36))

	var err error
	if mysqlConf, err = dbConfFromURL(envOr("DTX_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/dtx_test"), dtmcli.DBTypeMysql); err == nil {
		pgConf, err = dbConfFromURL(envOr("DTX_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/dtx_test"), dtmcli.DBTypePostgres)
	}
	mysqlAdmin, pgAdmin := mysqlConf, pgConf
	if err == nil {
		err = setupDatabases()
	}
	defer dropDatabases(mysqlAdmin, pgAdmin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "compat setup: %v\n(run 'bash scripts/services.sh' to start MariaDB and PostgreSQL)\n", err)
		return 2
	}
	if err := startBusi(); err != nil {
		fmt.Fprintf(os.Stderr, "compat setup: participant: %v\n", err)
		return 2
	}
	if err := startGrpcBusi(); err != nil {
		fmt.Fprintf(os.Stderr, "compat setup: gRPC participant: %v\n", err)
		return 2
	}
	fmt.Printf("compat: dtx %s grpc %q run %s participant %s grpc participant %s\n", dtxURL, grpcAddr, runID, busiURL, grpcBusiAddr)
	return m.Run()
}

// quietLogger keeps dtm's client logs to one line per error, on stderr (zap's default adds a
// stack trace to each, and the failure cases log many on purpose).
type quietLogger struct{}

func (quietLogger) Debugf(string, ...interface{}) {}
func (quietLogger) Infof(string, ...interface{})  {}
func (quietLogger) Warnf(string, ...interface{})  {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "dtm client: "+format+"\n", args...)
}

func envOr(name, fallback string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return fallback
}

func dbConfFromURL(raw, driver string) (dtmcli.DBConf, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return dtmcli.DBConf{}, fmt.Errorf("bad database URL %q: %w", raw, err)
	}
	port, _ := strconv.Atoi(u.Port())
	if port == 0 {
		port = map[string]int{dtmcli.DBTypeMysql: 3306, dtmcli.DBTypePostgres: 5432}[driver]
	}
	pass, _ := u.User.Password()
	conf := dtmcli.DBConf{Driver: driver, Host: u.Hostname(), Port: int64(port), User: u.User.Username(), Password: pass, Db: strings.TrimPrefix(u.Path, "/")}
	if driver == dtmcli.DBTypePostgres {
		conf.Schema = "public"
	}
	return conf, nil
}

// ownArea is this run's own MySQL database and PostgreSQL schema (one name for both, since dtm's
// client has one barrier table name for every database): the barrier table, in dtm's layout, and
// compat_account live there, and are dropped at the end. Other suites use barrier tables of other
// layouts; a shared dtm_barrier.barrier made one of them fail on a fresh machine.
var ownArea string

// barrierDDL is dtm's own DDL for the barrier table (sqls/dtmcli.barrier.*.sql), in ownArea.
func barrierDDL(driver string) []string {
	t := ownArea + ".barrier"
	if driver == dtmcli.DBTypeMysql {
		return []string{`create table if not exists ` + t + `(
  id bigint(22) PRIMARY KEY AUTO_INCREMENT,
  trans_type varchar(45) default '',
  gid varchar(128) default '',
  branch_id varchar(128) default '',
  op varchar(45) default '',
  barrier_id varchar(45) default '',
  reason varchar(45) default '' comment 'the branch type who insert this record',
  create_time datetime DEFAULT now(),
  update_time datetime DEFAULT now(),
  key(create_time),
  key(update_time),
  UNIQUE key(gid, branch_id, op, barrier_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4`,
			`create table if not exists compat_account(id varchar(128) primary key, balance int not null) ENGINE = InnoDB`,
		}
	}
	return []string{
		`create sequence if not exists ` + t + `_seq`,
		`create table if not exists ` + t + `(
  id bigint NOT NULL DEFAULT NEXTVAL('` + t + `_seq'),
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
)`,
		`create table if not exists compat_account(id varchar(128) primary key, balance int not null)`,
	}
}

// setupDatabases creates ownArea (a database on MariaDB, a schema on PostgreSQL) with the barrier
// table (dtm's own DDL) and one business table, compat_account(id, balance),
// that the participants move money in; the connections then use ownArea as their database /
// search_path.
func setupDatabases() error {
	ownArea = "dtx_compat_go_" + runID
	dtmcli.SetBarrierTableName(ownArea + ".barrier")
	admin, err := sql.Open("mysql", mysqlDSN(mysqlConf))
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.Exec(`create database ` + ownArea + ` /*!40100 DEFAULT CHARACTER SET utf8mb4 */`); err != nil {
		return fmt.Errorf("mariadb %s: %w", mysqlConf.Host, err)
	}
	pgAdmin, err := sql.Open("postgres", pgDSN(pgConf))
	if err != nil {
		return err
	}
	defer pgAdmin.Close()
	if _, err := pgAdmin.Exec(`create schema ` + ownArea); err != nil {
		return fmt.Errorf("postgres %s: %w", pgConf.Host, err)
	}
	mysqlConf.Db = ownArea
	pgConf.Schema = ownArea
	if mysqlDB, err = dtmimp.PooledDB(mysqlConf); err != nil {
		return err
	}
	for _, stmt := range barrierDDL(dtmcli.DBTypeMysql) {
		if _, err := mysqlDB.Exec(stmt); err != nil {
			return fmt.Errorf("mariadb %s: %w", mysqlConf.Host, err)
		}
	}
	if pgDB, err = dtmimp.PooledDB(pgConf); err != nil {
		return err
	}
	for _, stmt := range barrierDDL(dtmcli.DBTypePostgres) {
		if _, err := pgDB.Exec(stmt); err != nil {
			return fmt.Errorf("postgres %s: %w", pgConf.Host, err)
		}
	}
	return nil
}

// dropDatabases removes ownArea from both servers (best effort: a failed run's leftovers have a
// name of their own and harm no other run).
func dropDatabases(mysqlAdmin, pgAdmin dtmcli.DBConf) {
	if ownArea == "" {
		return
	}
	if db, err := sql.Open("mysql", mysqlDSN(mysqlAdmin)); err == nil {
		_, _ = db.Exec(`drop database if exists ` + ownArea)
		db.Close()
	}
	if db, err := sql.Open("postgres", pgDSN(pgAdmin)); err == nil {
		_, _ = db.Exec(`drop schema if exists ` + ownArea + ` cascade`)
		db.Close()
	}
}

func mysqlDSN(c dtmcli.DBConf) string {
	return fmt.Sprintf("%s:%s@tcp(%s:%d)/%s?charset=utf8mb4", c.User, c.Password, c.Host, c.Port, c.Db)
}

func pgDSN(c dtmcli.DBConf) string {
	return fmt.Sprintf("host=%s user=%s password=%s dbname='%s' port=%d sslmode=disable", c.Host, c.User, c.Password, c.Db, c.Port)
}

// ---------------------------------------------------------------- gids, accounts

func newGid(name string) string {
	return "go-" + runID + "-" + name
}

// placeAccounts creates the accounts of one case with the given balances.
func placeAccounts(t *testing.T, db *sql.DB, balances map[string]int) {
	t.Helper()
	for id, bal := range balances {
		q := "insert into compat_account(id, balance) values(?, ?)"
		if db == pgDB {
			q = "insert into compat_account(id, balance) values($1, $2)"
		}
		if _, err := db.Exec(q, id, bal); err != nil {
			t.Fatalf("create account %s: %v", id, err)
		}
	}
}

func balance(t *testing.T, db *sql.DB, id string) int {
	t.Helper()
	q := "select balance from compat_account where id = ?"
	if db == pgDB {
		q = "select balance from compat_account where id = $1"
	}
	var b int
	if err := db.QueryRow(q, id).Scan(&b); err != nil {
		t.Fatalf("balance of %s: %v", id, err)
	}
	return b
}

func expectBalance(t *testing.T, db *sql.DB, id string, want int) {
	t.Helper()
	if got := balance(t, db, id); got != want {
		t.Errorf("balance of %s = %d, want %d", id, got, want)
	}
}

// barrierRows lists "branch_id/op/barrier_id/reason" rows of this run's barrier table for a gid.
func barrierRows(t *testing.T, db *sql.DB, gid string) []string {
	t.Helper()
	q := "select branch_id, op, barrier_id, reason from " + ownArea + ".barrier where gid = ? order by id"
	if db == pgDB {
		q = "select branch_id, op, barrier_id, reason from " + ownArea + ".barrier where gid = $1 order by id"
	}
	rows, err := db.Query(q, gid)
	if err != nil {
		t.Fatalf("barrier rows: %v", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var b, op, bid, reason string
		if err := rows.Scan(&b, &op, &bid, &reason); err != nil {
			t.Fatalf("barrier rows: %v", err)
		}
		out = append(out, b+"/"+op+"/"+bid+"/"+reason)
	}
	return out
}

// ---------------------------------------------------------------- dtx

type wireTrans struct {
	Gid            string `json:"gid"`
	TransType      string `json:"trans_type"`
	Status         string `json:"status"`
	RollbackReason string `json:"rollback_reason"`
	Protocol       string `json:"protocol"`
	QueryPrepared  string `json:"query_prepared"`
	CustomData     string `json:"custom_data"`
	Options        string `json:"options"`
	NextCronTime   string `json:"next_cron_time"`
}

type wireBranch struct {
	BranchID string `json:"branch_id"`
	Op       string `json:"op"`
	Status   string `json:"status"`
	URL      string `json:"url"`
	BinData  []byte `json:"bin_data"`
}

type queryReply struct {
	Transaction *wireTrans   `json:"transaction"`
	Branches    []wireBranch `json:"branches"`
}

func dtxCall(method, path string, body interface{}) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, dtxURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("content-type", "application/json")
	}
	client := http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// query is dtx's /api/dtmsvr/query.
func query(t *testing.T, gid string) queryReply {
	t.Helper()
	code, data, err := dtxCall("GET", "/api/dtmsvr/query?gid="+url.QueryEscape(gid), nil)
	if err != nil || code != 200 {
		t.Fatalf("query %s: %d %s %v", gid, code, data, err)
	}
	var r queryReply
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("query %s: bad JSON %s: %v", gid, data, err)
	}
	return r
}

func transStatus(t *testing.T, gid string) string {
	t.Helper()
	q := query(t, gid)
	if q.Transaction == nil {
		return ""
	}
	return q.Transaction.Status
}

// cron advances dtx's clock by advance and runs one cron round (the test-control API).
func cron(t *testing.T, advance time.Duration) {
	t.Helper()
	code, data, err := dtxCall("POST", "/api/dtx/test/cron", map[string]int64{"advanceMs": advance.Milliseconds()})
	if err != nil || code != 200 {
		t.Fatalf("test cron: %d %s %v (dtx must run with DTX_TEST_CONTROL=1)", code, data, err)
	}
}

// cronUntilDue runs one cron round with dtx's clock moved past the trans's next_cron_time. A
// restarted dtx starts from the real time again (the test clock's offset dies with the process),
// while next_cron_time was written by the old process's shifted clock: read it, do not guess.
func cronUntilDue(t *testing.T, gid string) {
	t.Helper()
	q := query(t, gid)
	if q.Transaction == nil {
		t.Fatalf("cronUntilDue: no trans %s", gid)
	}
	due, err := time.Parse(time.RFC3339Nano, q.Transaction.NextCronTime)
	if err != nil {
		t.Fatalf("next_cron_time %q of %s: %v", q.Transaction.NextCronTime, gid, err)
	}
	advance := time.Until(due) + 2*time.Second
	if advance < 2*time.Second {
		advance = 2 * time.Second
	}
	cron(t, advance)
}

// settle waits until every pass running in dtx has ended.
func settle(t *testing.T) {
	t.Helper()
	code, data, err := dtxCall("POST", "/api/dtx/test/settle", map[string]int{})
	if err != nil || code != 200 {
		t.Fatalf("test settle: %d %s %v", code, data, err)
	}
}

// waitStatus waits (real time, no cron) until the trans reaches want.
func waitStatus(t *testing.T, gid, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		settle(t)
		if last = transStatus(t, gid); last == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("trans %s: status %q, want %q; query: %s", gid, last, want, mustJSON(query(t, gid)))
}

func expectStatus(t *testing.T, gid, want string) {
	t.Helper()
	if got := transStatus(t, gid); got != want {
		t.Fatalf("trans %s: status %q, want %q; query: %s", gid, got, want, mustJSON(query(t, gid)))
	}
}

// branchStatuses lists "branch_id op status" in dtx's store order.
func branchStatuses(t *testing.T, gid string) []string {
	t.Helper()
	out := []string{}
	for _, b := range query(t, gid).Branches {
		out = append(out, b.BranchID+" "+b.Op+" "+b.Status)
	}
	return out
}

func expectBranches(t *testing.T, gid string, want ...string) {
	t.Helper()
	if got := branchStatuses(t, gid); !reflect.DeepEqual(got, want) {
		t.Errorf("trans %s branches:\n got  %q\n want %q", gid, got, want)
	}
}

// harness asks the test harness to SIGKILL dtx ("kill") or to start it again ("start").
func harness(t *testing.T, action string) {
	t.Helper()
	if harnessURL == "" {
		t.Fatalf("DTX_HARNESS_URL is not set: this case kills and restarts dtx and needs the harness (test/e2e/compat.test.ts) to do it")
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Post(harnessURL+"/"+action, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("harness %s: %v", action, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("harness %s: %d %s", action, resp.StatusCode, data)
	}
}

// ---------------------------------------------------------------- assertions

func mustJSON(v interface{}) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// expectNoErr: dtm would return no error here.
func expectNoErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: dtm's client returned %q, want no error (dtm returns none here)", what, err)
	}
}

// expectErrIs: dtm would return an error of this kind (dtmcli.ErrFailure, ErrOngoing, ErrDuplicated).
func expectErrIs(t *testing.T, what string, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: dtm's client returned no error, want %v", what, kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("%s: dtm's client returned %q, want an error that is %v", what, err, kind)
	}
}

func expectEqual(t *testing.T, what string, got, want interface{}) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %#v\n want %#v", what, got, want)
	}
}
