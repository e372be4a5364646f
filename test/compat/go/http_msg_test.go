package compat

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dtm-labs/client/dtmcli"
)

func queryPreparedURL(db string) string {
	return busiURL + "/api/msg/QueryPrepared?db=" + db
}

// Prepare, then Submit: the msg's steps run after Submit.
func TestMsgPrepareSubmit(t *testing.T) {
	gid := newGid("msg-ps")
	msg := dtmcli.NewMsg(dtmServer, gid).
		Add(busiUrl("TransOut"), &busiReq{Amount: 30}).
		Add(busiUrl("TransIn"), &busiReq{Amount: 30})
	expectNoErr(t, "msg.Prepare", msg.Prepare(busiUrl("QueryPrepared")))
	expectStatus(t, gid, dtmcli.StatusPrepared)
	expectCalls(t, gid)
	expectNoErr(t, "msg.Submit", msg.Submit())
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectBranches(t, gid, "01 action succeed", "02 action succeed")
	expectCalls(t, gid, "TransOut:action", "TransIn:action")
	if q := query(t, gid); q.Transaction == nil || q.Transaction.QueryPrepared != busiUrl("QueryPrepared") {
		t.Errorf("query_prepared not stored: %s", mustJSON(q.Transaction))
	}
}

// doAndSubmitDB runs one DoAndSubmitDB whose local transaction takes 30 from account out.
func doAndSubmitDB(t *testing.T, db *sql.DB, dbType, name string) {
	gid := newGid(name)
	out, in := gid+"-out", gid+"-in"
	placeAccounts(t, db, map[string]int{out: 100})
	placeAccounts(t, mysqlDB, map[string]int{in: 0})
	update := "update compat_account set balance = balance - 30 where id = ?"
	if dbType == dtmcli.DBTypePostgres {
		update = "update compat_account set balance = balance - 30 where id = $1"
	}
	msg := dtmcli.NewMsg(dtmServer, gid).Add(barrierUrl("TransIn"), &busiReq{User: in, Amount: 30})
	err := msg.DoAndSubmitDB(queryPreparedURL(dbType), db, func(tx *sql.Tx) error {
		_, err := tx.Exec(update, out)
		return err
	})
	expectNoErr(t, "msg.DoAndSubmitDB", err)
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectBalance(t, db, out, 70)
	expectBalance(t, mysqlDB, in, 30)
	expectEqual(t, "sender's barrier rows", senderRows(barrierRows(t, db, gid)), []string{"00/msg/01/msg"})
	expectCalls(t, gid, "TransIn:action")
}

// DoAndSubmitDB with the barrier in MariaDB.
func TestMsgDoAndSubmitDBMysql(t *testing.T) {
	doAndSubmitDB(t, mysqlDB, dtmcli.DBTypeMysql, "msg-do-my")
}

// DoAndSubmitDB with the barrier in PostgreSQL (dtm's docs: dtmcli.SetCurrentDBType).
func TestMsgDoAndSubmitDBPostgres(t *testing.T) {
	dtmcli.SetCurrentDBType(dtmcli.DBTypePostgres)
	defer dtmcli.SetCurrentDBType(dtmcli.DBTypeMysql)
	doAndSubmitDB(t, pgDB, dtmcli.DBTypePostgres, "msg-do-pg")
}

// The local transaction returns ErrFailure: DoAndSubmit aborts the msg and returns that error.
func TestMsgDoAndSubmitBusiFailure(t *testing.T) {
	gid := newGid("msg-do-fail")
	msg := dtmcli.NewMsg(dtmServer, gid).Add(busiUrl("TransIn"), &busiReq{Amount: 30})
	err := msg.DoAndSubmitDB(queryPreparedURL("mysql"), mysqlDB, func(tx *sql.Tx) error {
		return dtmcli.ErrFailure
	})
	expectErrIs(t, "msg.DoAndSubmitDB", err, dtmcli.ErrFailure)
	expectStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid)
}

// The local transaction fails with another error: the client asks the check-back itself, which
// finds no committed barrier (reason rollback, 409), and aborts; DoAndSubmit returns the error.
func TestMsgDoAndSubmitBusiError(t *testing.T) {
	gid := newGid("msg-do-err")
	boom := errors.New("local transaction failed")
	msg := dtmcli.NewMsg(dtmServer, gid).Add(busiUrl("TransIn"), &busiReq{Amount: 30})
	err := msg.DoAndSubmitDB(queryPreparedURL("mysql"), mysqlDB, func(tx *sql.Tx) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("msg.DoAndSubmitDB = %v, want the local transaction's error", err)
	}
	expectStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid, "QueryPrepared:msg")
	expectEqual(t, "barrier rows", barrierRows(t, mysqlDB, gid), []string{"00/msg/01/rollback"})
}

// A second DoAndSubmit of the same gid after the first committed: the barrier rejects it with
// ErrDuplicated (dtm answers the repeated prepare of a submitted msg with 409 first).
func TestMsgDoAndSubmitDuplicated(t *testing.T) {
	gid := newGid("msg-do-dup")
	bb, err := dtmcli.BarrierFrom("msg", gid, "00", "msg")
	expectNoErr(t, "BarrierFrom", err)
	// The sender's local transaction committed once already (its barrier row exists) and the
	// msg is still prepared: a repeated DoAndSubmit must not run the business again.
	msg := dtmcli.NewMsg(dtmServer, gid).Add(busiUrl("TransIn"), &busiReq{Amount: 30})
	expectNoErr(t, "msg.Prepare", msg.Prepare(queryPreparedURL("mysql")))
	expectNoErr(t, "first local transaction", bb.CallWithDB(mysqlDB, func(tx *sql.Tx) error { return nil }))
	ran := false
	err = msg.DoAndSubmitDB(queryPreparedURL("mysql"), mysqlDB, func(tx *sql.Tx) error { ran = true; return nil })
	expectErrIs(t, "repeated msg.DoAndSubmitDB", err, dtmcli.ErrDuplicated)
	if ran {
		t.Errorf("the business ran a second time")
	}
	// DoAndSubmit asked the check-back (the barrier committed: SUCCESS) and submitted.
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "QueryPrepared:msg", "TransIn:action")
}

// The sender prepared the msg and committed its local transaction, then crashed before Submit.
// When the msg times out, dtx asks the check-back (bb.QueryPrepared finds the committed barrier:
// SUCCESS) and delivers the msg.
func TestMsgQueryPreparedAfterSenderCrash(t *testing.T) {
	gid := newGid("msg-crash-ok")
	out, in := gid+"-out", gid+"-in"
	placeAccounts(t, mysqlDB, map[string]int{out: 100, in: 0})
	msg := dtmcli.NewMsg(dtmServer, gid).Add(barrierUrl("TransIn"), &busiReq{User: in, Amount: 30})
	msg.TimeoutToFail = 5
	expectNoErr(t, "msg.Prepare", msg.Prepare(queryPreparedURL("mysql")))
	bb, _ := dtmcli.BarrierFrom("msg", gid, "00", "msg")
	expectNoErr(t, "local transaction", bb.CallWithDB(mysqlDB, func(tx *sql.Tx) error {
		_, err := tx.Exec("update compat_account set balance = balance - 30 where id = ?", out)
		return err
	}))
	// ... and the sender is gone: no Submit.
	cron(t, time.Second)
	expectStatus(t, gid, dtmcli.StatusPrepared) // not timed out yet: no check-back
	expectCalls(t, gid)
	cron(t, 5*time.Second)
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "QueryPrepared:msg", "TransIn:action")
	c := callsFull(gid)
	if len(c) > 0 && (c[0].BranchID != "00" || c[0].Method != "GET") {
		t.Errorf("check-back call: %+v, want GET with branch_id=00 op=msg", c[0])
	}
	expectBalance(t, mysqlDB, out, 70)
	expectBalance(t, mysqlDB, in, 30)
}

// The sender prepared the msg and crashed before its local transaction committed: the
// check-back inserts the rollback barrier, answers FAILURE, and dtx fails the msg.
func TestMsgQueryPreparedRollbackAfterSenderCrash(t *testing.T) {
	gid := newGid("msg-crash-rb")
	msg := dtmcli.NewMsg(dtmServer, gid).Add(busiUrl("TransIn"), &busiReq{Amount: 30})
	msg.TimeoutToFail = 5
	expectNoErr(t, "msg.Prepare", msg.Prepare(queryPreparedURL("mysql")))
	cron(t, 6*time.Second)
	waitStatus(t, gid, dtmcli.StatusFailed)
	expectCalls(t, gid, "QueryPrepared:msg")
	expectBranches(t, gid, "01 action prepared")
	expectEqual(t, "barrier rows", barrierRows(t, mysqlDB, gid), []string{"00/msg/01/rollback"})
	// The sender comes back and tries its local transaction: the barrier refuses it.
	bb, _ := dtmcli.BarrierFrom("msg", gid, "00", "msg")
	err := bb.CallWithDB(mysqlDB, func(tx *sql.Tx) error { return nil })
	expectErrIs(t, "late local transaction", err, dtmcli.ErrDuplicated)
}

// senderRows keeps the barrier rows of the sender's local transaction (branch 00).
func senderRows(rows []string) []string {
	out := []string{}
	for _, r := range rows {
		if strings.HasPrefix(r, "00/") {
			out = append(out, r)
		}
	}
	return out
}

// Submit without Prepare: a msg whose sender needs no check-back.
func TestMsgSubmitWithoutPrepare(t *testing.T) {
	gid := newGid("msg-direct")
	msg := dtmcli.NewMsg(dtmServer, gid).Add(busiUrl("TransIn"), &busiReq{Amount: 30})
	expectNoErr(t, "msg.Submit", msg.Submit())
	waitStatus(t, gid, dtmcli.StatusSucceed)
	expectCalls(t, gid, "TransIn:action")
}
